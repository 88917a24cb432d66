//go:build race

package federation

const raceEnabled = true
