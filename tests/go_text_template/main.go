package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/template"
)

func main() {
	src, _ := io.ReadAll(os.Stdin)
	funcs := template.FuncMap{
		"parseJSON": func(s string) (interface{}, error) {
			if s == "" {
				return map[string]interface{}{}, nil
			}
			var d interface{}
			if err := json.Unmarshal([]byte(s), &d); err != nil {
				return nil, err
			}
			return d, nil
		},
		"split": func(sep, s string) ([]string, error) {
			s = strings.TrimSpace(s)
			if s == "" {
				return []string{}, nil
			}
			return strings.Split(s, sep), nil
		},
		"join": func(sep string, a []string) (string, error) { return strings.Join(a, sep), nil },
		"toLower": func(s string) (string, error) { return strings.ToLower(s), nil },
		"loop": func(ints ...int64) ([]int64, error) {
			var start, stop int64
			switch len(ints) {
			case 1:
				start, stop = 0, ints[0]
			case 2:
				start, stop = ints[0], ints[1]
			default:
				return nil, fmt.Errorf("loop: wrong number of arguments, expected 1 or 2, but got %d", len(ints))
			}
			var r []int64
			for i := start; i < stop; i++ {
				r = append(r, i)
			}
			return r, nil
		},
	}
	t, err := template.New("").Funcs(funcs).Option("missingkey=zero").Parse(string(src))
	if err != nil {
		fmt.Print("ERR parse: ", err)
		os.Exit(0)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, nil); err != nil {
		fmt.Print("ERR execute: ", err)
		os.Exit(0)
	}
	os.Stdout.Write(b.Bytes())
}
