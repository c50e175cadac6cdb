package cli

import (
	"fmt"
	"io"
	"strings"
)

// writeDiff writes a unified diff of two texts, line by line, with
// three lines of context around each change (as diff -u does), under
// the headers from and to; nothing when they are equal. It reports
// whether they differ. The texts are resources: a few hundred lines, so
// the longest common subsequence is found by the quadratic table.
func writeDiff(w io.Writer, from, to, a, b string) bool {
	x, y := lines(a), lines(b)
	// lcs[i][j] is the length of the longest common subsequence of
	// x[i:] and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte // ' ', '-', '+'
		text string
		ai   int // line of a (0-based) at this op
		bi   int
	}
	var ops []op
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			ops = append(ops, op{' ', x[i], i, j})
			i, j = i+1, j+1
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', x[i], i, j}) // (removals before additions, as diff prints them)
			i++
		default:
			ops = append(ops, op{'+', y[j], i, j})
			j++
		}
	}
	const context = 3
	changed := false
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		if !changed {
			fmt.Fprintf(w, "--- %s\n+++ %s\n", from, to)
			changed = true
		}
		// A hunk: from context lines before this change to context lines
		// after the last change that is no more than 2*context away.
		start, end := max(k-context, 0), k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*context {
				end = min(end+context, len(ops))
				break
			}
			end = run
		}
		na, nb := 0, 0
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				na++
			}
			if o.kind != '-' {
				nb++
			}
		}
		fromLine, toLine := ops[start].ai+1, ops[start].bi+1
		if na == 0 { // (diff -u names the line before an empty range)
			fromLine--
		}
		if nb == 0 {
			toLine--
		}
		fmt.Fprintf(w, "@@ -%d,%d +%d,%d @@\n", fromLine, na, toLine, nb)
		for _, o := range ops[start:end] {
			fmt.Fprintf(w, "%c%s\n", o.kind, o.text)
		}
		k = end
	}
	return changed
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
