package jsonfast

import "strconv"

// Int64 reads a plain integer that fits an int64.
func (r *Reader) Int64() int64 {
	n, err := strconv.ParseInt(string(r.number()), 10, 64)
	if err != nil {
		r.ok = false
	}
	return n
}
