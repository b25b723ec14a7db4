package engine

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TarContext packs a build context directory for the Docker API, keeping
// file modes; symlinks are kept as links. It refuses a context without
// its Dockerfile, with a clear error.
func TarContext(dir, dockerfile string) (io.Reader, error) {
	if _, err := os.Stat(filepath.Join(dir, dockerfile)); err != nil {
		return nil, fmt.Errorf("build context %s has no %s: %w", dir, dockerfile, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		header, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		header.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(header); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pack build context %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// TarFiles is a tar, to extract at /, holding the files with their
// modes and their parent directories (0755, root). Files belong to root,
// or to the container's user when it is numeric ("uid" or "uid:gid"), so
// that a 0600 secret stays readable by it. nil when there are no files.
func TarFiles(files []FileSpec, user string) (io.Reader, error) {
	if len(files) == 0 {
		return nil, nil
	}
	uid, gid := numericUser(user)
	sorted := append([]FileSpec(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Target < sorted[j].Target })
	var buf bytes.Buffer
	archive := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	now := time.Now()
	for _, file := range sorted {
		if !path.IsAbs(file.Target) || path.Clean(file.Target) == "/" {
			return nil, fmt.Errorf("file target %q must be an absolute file path", file.Target)
		}
		name := strings.TrimPrefix(path.Clean(file.Target), "/")
		if err := tarDirs(archive, path.Dir(name), dirs, now); err != nil {
			return nil, err
		}
		mode := int64(file.Mode.Perm())
		if mode == 0 {
			mode = 0o644
		}
		header := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(file.Data)), Uid: uid, Gid: gid, ModTime: now}
		if err := archive.WriteHeader(header); err != nil {
			return nil, err
		}
		if _, err := archive.Write(file.Data); err != nil {
			return nil, err
		}
	}
	if err := archive.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// tarDirs writes dir and its parents, outermost first, once each.
func tarDirs(archive *tar.Writer, dir string, written map[string]bool, now time.Time) error {
	if dir == "." || dir == "/" || written[dir] {
		return nil
	}
	if err := tarDirs(archive, path.Dir(dir), written, now); err != nil {
		return err
	}
	written[dir] = true
	return archive.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: now})
}

func numericUser(user string) (uid, gid int) {
	userPart, groupPart, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.Atoi(userPart)
	if err != nil || uid < 0 {
		return 0, 0
	}
	if !hasGroup {
		return uid, uid
	}
	if gid, err = strconv.Atoi(groupPart); err != nil || gid < 0 {
		return uid, 0
	}
	return uid, gid
}
