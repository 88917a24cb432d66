//go:build !linux

package hugeheap

func advise(r Result, n int) (Result, error) {
	r.Skipped = "not Linux"
	return r, nil
}
