package etcd

// SetOverlayMax sets how many overlay keys may pile up before a rebase,
// for the tests, and returns a function that restores it.
func SetOverlayMax(n int) (restore func()) {
	old := overlayMax
	overlayMax = n
	return func() { overlayMax = old }
}
