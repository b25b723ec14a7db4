// Package atomicfile writes files and directories so that a reader sees
// the old content or the new one, never a half-written one.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File is one file of a directory written by ReplaceDir.
type File struct {
	Path string      // slash-separated, relative to the directory
	Mode fs.FileMode // created with this mode from the start
	Data []byte
}

// WriteFile writes data to a temp file beside path (created with the
// final mode, so a secret is never readable by others, even briefly),
// fsyncs it, renames it over path and fsyncs the directory. Missing
// parent directories are created with mode 0700.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("create temp file in %s: %w", dir, err)
	}
	if err := fill(tmp, data, mode); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// fill sets an open file's mode, writes data, fsyncs and closes it.
func fill(f *os.File, data []byte, mode fs.FileMode) error {
	err := f.Chmod(mode.Perm()) // umask may have narrowed a created file
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return nil
}

// ReplaceDir writes files into a fresh sibling directory of dir (mode
// 0755, each file created with its mode and fsynced), then swaps it in
// for dir with renames. A failure at any point leaves dir as it was.
// Missing parents of dir are created with mode 0755.
func ReplaceDir(dir string, files []File) error {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	staging, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".new-")
	if err != nil {
		return fmt.Errorf("create staging directory: %w", err)
	}
	if err := writeAll(staging, files); err != nil {
		os.RemoveAll(staging)
		return err
	}
	return swapInto(staging, dir)
}

func writeAll(root string, files []File) error {
	if err := os.Chmod(root, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", root, err)
	}
	for _, file := range files {
		if file.Path == "" || !filepath.IsLocal(filepath.FromSlash(file.Path)) {
			return fmt.Errorf("%q is not a relative path inside %s", file.Path, root)
		}
		target := filepath.Join(root, filepath.FromSlash(file.Path))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(target), err)
		}
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, file.Mode.Perm())
		if err != nil {
			return fmt.Errorf("create %s: %w", target, err)
		}
		if err := fill(f, file.Data, file.Mode); err != nil {
			return err
		}
	}
	return nil
}

// swapInto replaces dir with staging: the old dir is moved aside, the new
// one renamed into place, then the old one removed. If the second rename
// fails the old dir is moved back.
func swapInto(staging, dir string) error {
	old := ""
	if _, err := os.Lstat(dir); err == nil {
		old = staging + ".old"
		if err := os.Rename(dir, old); err != nil {
			os.RemoveAll(staging)
			return fmt.Errorf("move previous %s aside: %w", dir, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		os.RemoveAll(staging)
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := os.Rename(staging, dir); err != nil {
		if old != "" {
			_ = os.Rename(old, dir)
		}
		os.RemoveAll(staging)
		return fmt.Errorf("move new files into %s: %w", dir, err)
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("remove previous %s: %w", old, err)
		}
	}
	syncDir(filepath.Dir(dir))
	return nil
}

// syncDir makes a rename in dir durable; it is best effort, as not every
// file system can sync a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
