package templates

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrForeignDir says the output directory holds files obcd did not write.
var ErrForeignDir = errors.New("output directory was not written by obcd")

// WriteDir writes artifacts to dir all at once: everything goes to a
// fresh sibling directory first (each file fsynced, with its mode), which
// then replaces dir with renames. A failure at any point leaves dir as it
// was. An existing dir is replaced only when it holds an obcd manifest,
// so a mistyped --out never deletes someone's files.
func WriteDir(dir string, artifacts []Artifact) error {
	dir = filepath.Clean(dir)
	if err := checkReplaceable(dir); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	staging, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".new-")
	if err != nil {
		return fmt.Errorf("create staging directory: %w", err)
	}
	if err := writeAll(staging, artifacts); err != nil {
		os.RemoveAll(staging)
		return err
	}
	return swapInto(staging, dir)
}

func checkReplaceable(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("read %s: %w", dir, err)
	case len(entries) == 0:
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, PathManifest)); err != nil {
		return fmt.Errorf("%w: %s has files but no %s; choose another --out, or move its files away: %w",
			ErrForeignDir, dir, PathManifest, err)
	}
	return nil
}

func writeAll(root string, artifacts []Artifact) error {
	if err := os.Chmod(root, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", root, err)
	}
	for _, a := range artifacts {
		target := filepath.Join(root, filepath.FromSlash(a.Path))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(target), err)
		}
		if err := writeFileSync(target, a.Data, a.Mode); err != nil {
			return err
		}
	}
	return nil
}

// writeFileSync creates a file with its final mode from the start (no
// window where a secret file is world-readable) and fsyncs it.
func writeFileSync(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := f.Chmod(mode.Perm()); err != nil { // umask may have narrowed it
		f.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

// swapInto replaces dir with staging: the old dir is moved aside, the new
// one renamed into place, then the old one removed. If the second rename
// fails the old dir is moved back.
func swapInto(staging, dir string) error {
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = staging + ".old"
		if err := os.Rename(dir, old); err != nil {
			os.RemoveAll(staging)
			return fmt.Errorf("move previous %s aside: %w", dir, err)
		}
	}
	if err := os.Rename(staging, dir); err != nil {
		if old != "" {
			_ = os.Rename(old, dir)
		}
		os.RemoveAll(staging)
		return fmt.Errorf("move rendered files into %s: %w", dir, err)
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("remove previous render %s: %w", old, err)
		}
	}
	syncDir(filepath.Dir(dir))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
