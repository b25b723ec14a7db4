package hcl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// functions returns the functions a stack file can call: the go-cty
// standard library, HCL's try and can, and obcd's env and file.
// baseDir resolves relative paths given to file(), which reads only
// inside it and allowFile's directories; lookupEnv reads the
// process environment (tests pass their own). What file() and env()
// return is noted in reads, so that no diagnostic prints it.
func functions(baseDir string, allowFile []string, lookupEnv func(string) (string, bool), reads *outsideReads) map[string]function.Function {
	funcs := allFunctions(baseDir, allowFile, lookupEnv)
	funcs["file"], funcs["env"] = reads.recording(funcs["file"]), reads.recording(funcs["env"])
	for name, f := range funcs {
		if !passesSecrets[name] {
			funcs[name] = refusingSecrets(name, f)
		}
	}
	return funcs
}

// passesSecrets are the functions that may take a secret: they return it
// as it is, never its value in another form.
var passesSecrets = map[string]bool{"try": true, "can": true, "coalesce": true}

// refusingSecrets is f, refusing any argument that holds a secret: every
// other function would turn it into a string, a JSON document or the
// like (jsonencode(secret.x) rendered as '{}'), where its value would
// end up in a rendered file.
func refusingSecrets(name string, f function.Function) function.Function {
	return function.New(&function.Spec{
		Description: f.Description(),
		Params:      f.Params(),
		VarParam:    f.VarParam(),
		Type: func(args []cty.Value) (cty.Type, error) {
			for i, arg := range args {
				if ref := secretIn(arg); ref != "" {
					return cty.NilType, function.NewArgErrorf(i, "%s cannot be passed to %s(): a secret goes only to an argument that takes one (password, secret_key, ...), so that its value never ends up in a rendered file", ref, name)
				}
			}
			return f.ReturnTypeForValues(args)
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) { return f.Call(args) },
	})
}

// secretIn names a secret held anywhere in v (secret.<name>), or "".
func secretIn(v cty.Value) string {
	found := ""
	_ = cty.Walk(v, func(_ cty.Path, val cty.Value) (bool, error) {
		if found == "" && val.Type().Equals(secretRefType) && val.IsKnown() && !val.IsNull() {
			found = "secret." + val.EncapsulatedValue().(*secretRef).name
		}
		return found == "", nil
	})
	return found
}

func allFunctions(baseDir string, allowFile []string, lookupEnv func(string) (string, bool)) map[string]function.Function {
	return map[string]function.Function{
		"abs":        stdlib.AbsoluteFunc,
		"can":        tryfunc.CanFunc,
		"ceil":       stdlib.CeilFunc,
		"chomp":      stdlib.ChompFunc,
		"coalesce":   stdlib.CoalesceFunc,
		"compact":    stdlib.CompactFunc,
		"concat":     stdlib.ConcatFunc,
		"contains":   stdlib.ContainsFunc,
		"distinct":   stdlib.DistinctFunc,
		"element":    stdlib.ElementFunc,
		"env":        envFunc(lookupEnv),
		"file":       fileFunc(baseDir, allowFile),
		"flatten":    stdlib.FlattenFunc,
		"floor":      stdlib.FloorFunc,
		"format":     stdlib.FormatFunc,
		"formatlist": stdlib.FormatListFunc,
		"indent":     boundedIndent,
		"join":       stdlib.JoinFunc,
		"jsondecode": stdlib.JSONDecodeFunc,
		"jsonencode": stdlib.JSONEncodeFunc,
		"keys":       stdlib.KeysFunc,
		"length":     stdlib.LengthFunc,
		"lookup":     stdlib.LookupFunc,
		"lower":      stdlib.LowerFunc,
		"max":        stdlib.MaxFunc,
		"merge":      stdlib.MergeFunc,
		"min":        stdlib.MinFunc,
		"range":      stdlib.RangeFunc,
		"regex":      stdlib.RegexFunc,
		"regexall":   stdlib.RegexAllFunc,
		"replace":    boundedReplace,
		"reverse":    stdlib.ReverseListFunc,
		"setunion":   stdlib.SetUnionFunc,
		"slice":      stdlib.SliceFunc,
		"sort":       stdlib.SortFunc,
		"split":      stdlib.SplitFunc,
		"strlen":     stdlib.StrlenFunc,
		"substr":     stdlib.SubstrFunc,
		"title":      stdlib.TitleFunc,
		"tobool":     stdlib.MakeToFunc(cty.Bool),
		"tolist":     stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":      stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"tonumber":   stdlib.MakeToFunc(cty.Number),
		"toset":      stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":   stdlib.MakeToFunc(cty.String),
		"trim":       stdlib.TrimFunc,
		"trimprefix": stdlib.TrimPrefixFunc,
		"trimspace":  stdlib.TrimSpaceFunc,
		"trimsuffix": stdlib.TrimSuffixFunc,
		"try":        tryfunc.TryFunc,
		"upper":      stdlib.UpperFunc,
		"values":     stdlib.ValuesFunc,
		"zipmap":     stdlib.ZipmapFunc,
	}
}

// envFunc reads an environment variable: env("NAME") fails when NAME is
// unset, so a missing setting is caught at load time rather than rendered
// as an empty string; env("NAME", "fallback") returns the fallback instead.
func envFunc(lookupEnv func(string) (string, bool)) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the value of an environment variable.",
		Params:      []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam:    &function.Parameter{Name: "default", Type: cty.String},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			if value, ok := lookupEnv(name); ok {
				return cty.StringVal(value), nil
			}
			switch len(args) {
			case 1:
				return cty.NilVal, function.NewArgErrorf(0, "environment variable %s is not set; export it, or give a fallback: env(%q, \"value\")", name, name)
			case 2:
				return args[1], nil
			default:
				return cty.NilVal, function.NewArgErrorf(2, "env takes a name and at most one fallback")
			}
		},
	})
}

// MaxFunctionString bounds the string indent() and replace() may
// build: the result is allocated at once, and an allocation the machine
// cannot hold is a fatal error no bound on the heap can catch.
const MaxFunctionString = 64 << 20

// boundedIndent is indent, refusing a count of spaces that would build a
// string longer than MaxFunctionString.
var boundedIndent = function.New(&function.Spec{
	Description: stdlib.IndentFunc.Description(),
	Params:      stdlib.IndentFunc.Params(),
	Type:        function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		spaces, _ := args[0].AsBigFloat().Int64()
		lines := int64(strings.Count(args[1].AsString(), "\n"))
		if spaces < 0 || spaces > MaxFunctionString || spaces*lines > MaxFunctionString {
			return cty.NilVal, function.NewArgErrorf(0, "indent by %s spaces over %d lines would build more than %d MB", args[0].AsBigFloat().String(), lines+1, MaxFunctionString>>20)
		}
		return stdlib.IndentFunc.Call(args)
	},
})

// boundedReplace is replace, refusing a replacement that would build a
// string longer than MaxFunctionString.
var boundedReplace = function.New(&function.Spec{
	Description: stdlib.ReplaceFunc.Description(),
	Params:      stdlib.ReplaceFunc.Params(),
	Type:        function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		str, substr, repl := args[0].AsString(), args[1].AsString(), args[2].AsString()
		if grow := len(repl) - len(substr); grow > 0 && substr != "" && len(str)+strings.Count(str, substr)*grow > MaxFunctionString {
			return cty.NilVal, function.NewArgErrorf(2, "this replacement would build more than %d MB", MaxFunctionString>>20)
		}
		return stdlib.ReplaceFunc.Call(args)
	},
})

// MaxFileSize bounds what file() reads: configuration, not data.
const MaxFileSize = 1 << 20

// fileFunc reads a UTF-8 file, relative to the stack file's directory.
// It reads only a regular file (not a device, a FIFO or a directory) of
// at most MaxFileSize, inside the stack file's directory or one of
// allowed (--allow-file), after following symlinks: what it reads can
// end up in a world-readable rendered file.
func fileFunc(baseDir string, allowed []string) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the contents of a file, relative to the stack file.",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			path := args[0].AsString()
			if !filepath.IsAbs(path) {
				path = filepath.Join(baseDir, path)
			}
			data, err := readConfined(path, append([]string{baseDir}, allowed...))
			if err != nil {
				return cty.NilVal, function.NewArgError(0, err)
			}
			if !utf8.Valid(data) {
				return cty.NilVal, function.NewArgErrorf(0, "%s is not valid UTF-8 text", path)
			}
			return cty.StringVal(string(data)), nil
		},
	})
}

// readConfined reads path if, symlinks followed, it is a regular file
// of at most MaxFileSize inside one of dirs.
func readConfined(path string, dirs []string) ([]byte, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %s", path, describeFileError(err))
	}
	inside := false
	for _, dir := range dirs {
		realDir, err := filepath.EvalSymlinks(dir)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(realDir, real); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			inside = true
			break
		}
	}
	if !inside {
		stackDir, _ := filepath.Abs(dirs[0])
		return nil, fmt.Errorf("%s is outside the stack file's directory %s; file() reads only files there, so that nothing else on this machine ends up in a rendered file (pass --allow-file DIR to allow another directory)", path, stackDir)
	}
	data, err := readRegular(real, path, MaxFileSize)
	if errors.Is(err, errNotRegular) {
		return nil, fmt.Errorf("%w; file() reads only regular files", err)
	} else if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes; file() reads configuration, not data", path, MaxFileSize)
	}
	return data, nil
}

// errNotRegular is readRegular's refusal of a directory, a device, a
// FIFO or a socket.
var errNotRegular = errors.New("not a regular file")

// readRegular reads path if it is a regular file, and of it no more
// than limit+1 bytes: a result longer than limit means the file is
// larger. It never blocks on a FIFO nobody writes and never reads a
// device without end (/dev/zero). Its errors name the file as shown.
func readRegular(path, shown string, limit int) ([]byte, error) {
	// Non-blocking, so that opening a FIFO nobody writes returns at once
	// and is refused below as not a regular file, rather than waiting.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %s", shown, describeFileError(err))
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %s", shown, describeFileError(err))
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, %w", shown, fileKind(info.Mode()), errNotRegular)
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %s", shown, describeFileError(err))
	}
	return data, nil
}

func fileKind(mode os.FileMode) string {
	switch {
	case mode.IsDir():
		return "a directory"
	case mode&os.ModeDevice != 0:
		return "a device"
	case mode&os.ModeNamedPipe != 0:
		return "a named pipe"
	case mode&os.ModeSocket != 0:
		return "a socket"
	default:
		return "a special file"
	}
}

func describeFileError(err error) string {
	switch {
	case os.IsNotExist(err):
		return "no such file (paths are relative to the stack file's directory)"
	case os.IsPermission(err):
		return "permission denied"
	default:
		return fmt.Sprint(err)
	}
}
