//go:build linux || darwin

package stages

import "golang.org/x/sys/unix"

// diskFree returns the bytes free to this user in the file system that
// holds dir, or 0 if it cannot tell.
func diskFree(dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0
	}
	return int64(st.Bavail) * int64(st.Bsize)
}
