// Command sizecheck fails when a hand-written Go file outside tests is
// longer than -max-file lines or a function in one is longer than
// -max-func lines (issue 16: files ≤ 450, functions ≤ 80). Generated files
// ("Code generated … DO NOT EDIT."), tests, and vendored code (third_party,
// .data, .bin) are left out. It uses only the standard library, so
// `go run ./.ci/sizecheck` needs no module: make lint runs it.
//
// -allow names a file of known exceptions, one "path: func Name" or
// "path" (for a file) a line, '#' comments: they are reported but do not
// fail; an exception that is no longer over the limit fails, so the list
// only shrinks.
//
//	go run .ci/sizecheck/main.go [-max-file 450] [-max-func 80] [-allow FILE] [dir ...]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var generated = regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$`)

func main() {
	maxFile := flag.Int("max-file", 450, "most lines in a file")
	maxFunc := flag.Int("max-func", 80, "most lines in a function")
	allowFile := flag.String("allow", "", "file of known exceptions")
	flag.Parse()
	allow, err := readAllow(*allowFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sizecheck:", err)
		os.Exit(2)
	}
	dirs := flag.Args()
	if len(dirs) == 0 {
		dirs = []string{"."}
	}
	var problems []problem
	files := 0
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				switch d.Name() {
				case "third_party", ".data", ".bin", ".git", "node_modules", "testdata":
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			p, err := check(path, *maxFile, *maxFunc)
			if p != nil || err == nil {
				files++
			}
			problems = append(problems, p...)
			return err
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "sizecheck:", err)
			os.Exit(2)
		}
	}
	failed, known := problems[:0:0], 0
	for _, p := range problems {
		key := p.key
		if allow[key] {
			delete(allow, key)
			fmt.Println("known exception:", p.msg)
			known++
			continue
		}
		fmt.Println(p.msg)
		failed = append(failed, p)
	}
	for key := range allow {
		fmt.Printf("%s: listed in %s but no longer over the limit: remove it\n", key, *allowFile)
		failed = append(failed, problem{})
	}
	problems = failed
	if len(problems) > 0 {
		fmt.Printf("sizecheck: %d over the limits (files ≤ %d lines, functions ≤ %d) in %d files\n", len(problems), *maxFile, *maxFunc, files)
		os.Exit(1)
	}
	fmt.Printf("sizecheck: %d files, none over %d lines and no function over %d beyond %d known exceptions\n", files, *maxFile, *maxFunc, known)
}

// problem is one file or function over the limit; key names it in the
// allow file.
type problem struct{ key, msg string }

func readAllow(file string) (map[string]bool, error) {
	out := map[string]bool{}
	if file == "" {
		return out, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line, _, _ = strings.Cut(line, "#"); strings.TrimSpace(line) != "" {
			out[strings.TrimSpace(line)] = true
		}
	}
	return out, nil
}

// check returns path's problems; a generated file has none.
func check(path string, maxFile, maxFunc int) ([]problem, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if generated.Match(src) {
		return nil, nil
	}
	var out []problem
	if n := bytes.Count(src, []byte("\n")); n > maxFile {
		out = append(out, problem{path, fmt.Sprintf("%s: %d lines (limit %d)", path, n, maxFile)})
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		start, end := fset.Position(fn.Pos()).Line, fset.Position(fn.End()).Line
		if n := end - start + 1; n > maxFunc {
			out = append(out, problem{path + ": func " + name(fn), fmt.Sprintf("%s:%d: func %s is %d lines (limit %d)", path, start, name(fn), n, maxFunc)})
		}
	}
	return out, nil
}

func name(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	t := fn.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if ix, ok := t.(*ast.IndexExpr); ok {
		t = ix.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fn.Name.Name
	}
	return fn.Name.Name
}
