package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/google/renameio/v2"
)

const defaultSection = "## Serving vs llama.cpp"

func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	out := fs.String("o", "docs/benchmarks.md", "the benchmarks file whose section is rewritten")
	notes := fs.String("notes", "", "a line about the machine and settings, printed under the heading")
	heading := fs.String("section", defaultSection, "the section's heading line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ms []measurement
	for _, f := range fs.Args() {
		got, err := readMeasurements(f)
		if err != nil {
			return err
		}
		ms = append(ms, got...)
	}
	if len(ms) == 0 {
		return fmt.Errorf("no measurements in %v", fs.Args())
	}
	text := renderSection(ms, *heading, *notes)
	fmt.Print(text)
	old, err := os.ReadFile(*out)
	if err != nil {
		return fmt.Errorf("read %s: %w", *out, err)
	}
	return renameio.WriteFile(*out, []byte(replaceSection(string(old), *heading, text)), 0o644)
}

func readMeasurements(path string) ([]measurement, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []measurement
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var m measurement
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		ms = append(ms, m)
	}
	return ms, sc.Err()
}

type key struct {
	server, weights string
	clients         int
}

// renderSection gives, per server and weights, the median round's tokens/s
// for each client count, kfllm's ratio to llama.cpp on the same weights
// (the median of the rounds' ratios), the
// peak RSS, and whether the single-client greedy answers were the same.
func renderSection(ms []measurement, section, notes string) string {
	rates := map[key][]float64{}
	byRound := map[key]map[int]float64{} // for ratios within a round: servers run back to back
	rss := map[key]float64{}
	var rows [][2]string
	var clients []int
	first := map[key]measurement{}
	for _, m := range ms {
		k := key{m.Server, m.Weights, m.Clients}
		rates[k] = append(rates[k], m.TokPerSec)
		if byRound[k] == nil {
			byRound[k] = map[int]float64{}
		}
		byRound[k][m.Round] = m.TokPerSec
		rss[k] = max(rss[k], m.PeakRSSMB)
		if _, ok := first[k]; !ok {
			first[k] = m
		}
		if !slices.Contains(rows, [2]string{m.Server, m.Weights}) {
			rows = append(rows, [2]string{m.Server, m.Weights})
		}
		if !slices.Contains(clients, m.Clients) {
			clients = append(clients, m.Clients)
		}
	}
	slices.Sort(clients)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", section)
	if notes != "" {
		fmt.Fprintf(&b, "%s\n\n", notes)
	}
	b.WriteString("| server | weights |")
	for _, c := range clients {
		fmt.Fprintf(&b, " %d client(s) tok/s | ratio to llama.cpp |", c)
	}
	b.WriteString(" peak RSS MB | rounds |\n|---|---|")
	for range clients {
		b.WriteString("---|---|")
	}
	b.WriteString("---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s |", r[0], r[1])
		peak, rounds := 0.0, 0
		for _, c := range clients {
			k := key{r[0], r[1], c}
			v := rates[k]
			if len(v) == 0 {
				b.WriteString(" – | – |")
				continue
			}
			med := median(v)
			ratio := "–"
			if peer := rates[key{"llama.cpp", r[1], c}]; len(peer) > 0 && r[0] != "llama.cpp" {
				// The median of the rounds' ratios: on a shared machine the
				// load changes between rounds more than within one.
				var ratios []float64
				for round, x := range byRound[k] {
					if y, ok := byRound[key{"llama.cpp", r[1], c}][round]; ok && y > 0 {
						ratios = append(ratios, x/y)
					}
				}
				if len(ratios) == 0 {
					ratios = []float64{med / median(peer)}
				}
				ratio = fmt.Sprintf("%.2fx", median(ratios))
			}
			fmt.Fprintf(&b, " %.1f | %s |", med, ratio)
			peak = max(peak, rss[k])
			rounds = max(rounds, len(v))
		}
		fmt.Fprintf(&b, " %.0f | %d |\n", peak, rounds)
	}
	b.WriteString("\n")
	for _, r := range rows {
		if r[0] == "llama.cpp" {
			continue
		}
		a, okA := first[key{r[0], r[1], 1}]
		p, okP := first[key{"llama.cpp", r[1], 1}]
		if !okA || !okP {
			continue
		}
		same := 0
		for i := range a.Texts {
			if i < len(p.Texts) && a.Texts[i] == p.Texts[i] {
				same++
			}
		}
		fmt.Fprintf(&b, "Greedy answers, %s vs llama.cpp on %s weights: %d of %d prompts give the same text.\n", r[0], r[1], same, len(a.Texts))
	}
	b.WriteString("\n")
	return b.String()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// replaceSection puts text in place of the section of the same heading, or
// appends it.
func replaceSection(doc, section, text string) string {
	re := regexp.MustCompile(`(?ms)^` + regexp.QuoteMeta(section) + `\n.*?(?:^## |\z)`)
	loc := re.FindStringIndex(doc)
	if loc == nil {
		return strings.TrimRight(doc, "\n") + "\n\n" + text
	}
	end := loc[1]
	if strings.HasSuffix(doc[loc[0]:end], "## ") {
		end -= len("## ")
	}
	return doc[:loc[0]] + text + doc[end:]
}
