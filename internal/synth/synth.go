// Package synth makes the demo's dataset: a synthetic but non-trivial
// extractive QA set, generated deterministically from a seed. Each context
// tells a few facts about one invented person (where they were born and
// live, their work, age, a move, what they own, a company they founded), so
// that several places, years and numbers compete for each answer; every
// answer is a span of its context. The held-out set uses people, places,
// companies, jobs and sentence templates that the training set never shows,
// so a model can only score on it by reading the context.
package synth

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Record is one QA example, in the records artifact's field names.
type Record struct {
	Context  string `json:"context"`
	Question string `json:"question"`
	Answer   string `json:"answer"`
	// Relation names the fact asked about (born, lives, job, ...).
	Relation string `json:"relation"`
}

// Options sizes the two sets.
type Options struct {
	Seed  uint64
	Train int
	Eval  int
}

// Generate returns the training and the held-out records. The same options
// give the same records.
func Generate(opts Options) (train, eval []Record) {
	rng := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	pools := newPools(rng)
	train = make([]Record, 0, opts.Train)
	for len(train) < opts.Train {
		train = append(train, example(rng, pools.train, false))
	}
	eval = make([]Record, 0, opts.Eval)
	for len(eval) < opts.Eval {
		eval = append(eval, example(rng, pools.eval, true))
	}
	return train, eval
}

// pool is one side's entities.
type pool struct {
	first, last, places, companies, jobs, things []string
}

type pools struct{ train, eval pool }

var (
	onsets = []string{"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "st", "tr", "gl", "th", "sh", "ch"}
	vowels = []string{"a", "e", "i", "o", "u", "ai", "ou", "ea"}
	codas  = []string{"", "", "", "n", "r", "s", "l", "m", "th", "rk", "nd"}
	suffix = []string{"ville", "ton", "burg", "stad", "mouth", "field", "haven", "ford", "more", "dale"}
	corp   = []string{"Labs", "Works", "Systems", "Foods", "Motors", "Media", "Energy", "Textiles"}
	jobs   = []string{"baker", "pilot", "nurse", "farmer", "teacher", "plumber", "chemist", "lawyer", "painter", "carpenter",
		"dentist", "librarian", "journalist", "architect", "electrician", "gardener", "translator", "surgeon", "tailor", "sailor",
		"mechanic", "florist", "butcher", "jeweler", "potter", "weaver", "astronomer", "geologist", "pharmacist", "firefighter"}
	things = []string{"bicycles", "cats", "dogs", "guitars", "boats", "cars", "horses", "pianos", "clocks", "paintings",
		"lamps", "chairs", "kites", "books", "telescopes", "cameras", "violins", "goats", "hats", "maps"}
)

func word(rng *rand.Rand, syllables int) string {
	var b strings.Builder
	for i := 0; i < syllables; i++ {
		b.WriteString(onsets[rng.IntN(len(onsets))])
		b.WriteString(vowels[rng.IntN(len(vowels))])
	}
	b.WriteString(codas[rng.IntN(len(codas))])
	w := b.String()
	return strings.ToUpper(w[:1]) + w[1:]
}

// unique draws n distinct words from gen.
func unique(n int, seen map[string]bool, gen func() string) []string {
	out := make([]string, 0, n)
	for len(out) < n {
		w := gen()
		if seen[w] {
			continue
		}
		seen[w] = true
		out = append(out, w)
	}
	return out
}

// newPools draws every entity once and splits each list 80/20, so that no
// held-out entity appears in training.
func newPools(rng *rand.Rand) pools {
	seen := map[string]bool{}
	first := unique(600, seen, func() string { return word(rng, 1+rng.IntN(2)) })
	last := unique(600, seen, func() string { return word(rng, 2) })
	places := unique(600, seen, func() string {
		if rng.IntN(3) == 0 {
			return word(rng, 1) + suffix[rng.IntN(len(suffix))]
		}
		return word(rng, 2+rng.IntN(2))
	})
	companies := unique(300, seen, func() string { return word(rng, 2) + " " + corp[rng.IntN(len(corp))] })
	js := append([]string(nil), jobs...)
	ts := append([]string(nil), things...)
	rng.Shuffle(len(js), func(i, j int) { js[i], js[j] = js[j], js[i] })
	rng.Shuffle(len(ts), func(i, j int) { ts[i], ts[j] = ts[j], ts[i] })
	split := func(xs []string) ([]string, []string) { k := len(xs) * 4 / 5; return xs[:k], xs[k:] }
	var p pools
	p.train.first, p.eval.first = split(first)
	p.train.last, p.eval.last = split(last)
	p.train.places, p.eval.places = split(places)
	p.train.companies, p.eval.companies = split(companies)
	p.train.jobs, p.eval.jobs = split(js)
	p.train.things, p.eval.things = split(ts)
	return p
}

// relation is one kind of fact: the sentences that state it (training
// templates, then held-out ones) and the questions that ask for it. {P} is
// the person; {X} the answer; {Y} a second slot some facts have.
type relation struct {
	name      string
	train     []string
	held      []string
	questions []question
}

type question struct {
	text   string // with {P}, {X} or {Y}
	answer string // "X" or "Y": which slot answers it
}

var relations = []relation{
	{"born", []string{"{P} was born in {X}.", "{P} was born in {X} many years ago."},
		[]string{"Everyone knows that {P} was born in {X}."},
		[]question{{"Where was {P} born?", "X"}}},
	{"lives", []string{"{P} lives in {X}.", "Today {P} lives in {X} with a cat."},
		[]string{"For now, {P} lives in {X}, close to the sea."},
		[]question{{"Where does {P} live?", "X"}}},
	{"job", []string{"{P} works as a {X}.", "By trade, {P} works as a {X}."},
		[]string{"After many years, {P} still works as a {X}."},
		[]question{{"What does {P} work as?", "X"}}},
	{"age", []string{"{P} is {X} years old.", "At present {P} is {X} years old."},
		[]string{"As of this spring, {P} is {X} years old."},
		[]question{{"How old is {P}?", "X"}}},
	{"moved", []string{"In {Y}, {P} moved to {X}.", "{P} moved to {X} in {Y}."},
		[]string{"It was a long trip when {P} moved to {X} in {Y}."},
		[]question{{"When did {P} move to {X}?", "Y"}, {"Where did {P} move in {Y}?", "X"}}},
	{"owns", []string{"{P} owns {Y} {X}.", "At home {P} owns {Y} {X}."},
		[]string{"Oddly enough, {P} owns {Y} {X}."},
		[]question{{"How many {X} does {P} own?", "Y"}}},
	{"founded", []string{"{P} founded {X} in {Y}.", "In {Y}, {P} founded {X}."},
		[]string{"With two friends, {P} founded {X} in {Y}."},
		[]question{{"What company did {P} found?", "X"}, {"When did {P} found {X}?", "Y"}}},
}

type fact struct {
	rel      *relation
	sentence string
	x, y     string
}

// example makes one context of three to five facts about one person and a
// question about one of them.
func example(rng *rand.Rand, p pool, heldOut bool) Record {
	person := p.first[rng.IntN(len(p.first))] + " " + p.last[rng.IntN(len(p.last))]
	order := rng.Perm(len(relations))
	n := 3 + rng.IntN(3)
	usedPlaces := map[string]bool{}
	place := func() string {
		for {
			pl := p.places[rng.IntN(len(p.places))]
			if !usedPlaces[pl] {
				usedPlaces[pl] = true
				return pl
			}
		}
	}
	usedYears := map[int]bool{}
	year := func() string {
		for {
			y := 1950 + rng.IntN(74)
			if !usedYears[y] {
				usedYears[y] = true
				return fmt.Sprint(y)
			}
		}
	}
	facts := make([]fact, 0, n)
	for _, i := range order[:n] {
		r := &relations[i]
		f := fact{rel: r}
		switch r.name {
		case "born", "lives":
			f.x = place()
		case "job":
			f.x = p.jobs[rng.IntN(len(p.jobs))]
		case "age":
			f.x = fmt.Sprint(18 + rng.IntN(70))
		case "moved":
			f.x, f.y = place(), year()
		case "owns":
			f.x, f.y = p.things[rng.IntN(len(p.things))], fmt.Sprint(2+rng.IntN(11))
		case "founded":
			f.x, f.y = p.companies[rng.IntN(len(p.companies))], year()
		}
		templates := r.train
		if heldOut {
			templates = r.held
		}
		f.sentence = fill(templates[rng.IntN(len(templates))], person, f.x, f.y)
		facts = append(facts, f)
	}
	sentences := make([]string, len(facts))
	for i, f := range facts {
		sentences[i] = f.sentence
	}
	asked := facts[rng.IntN(len(facts))]
	q := asked.rel.questions[rng.IntN(len(asked.rel.questions))]
	answer := asked.x
	if q.answer == "Y" {
		answer = asked.y
	}
	ctx := strings.Join(sentences, " ")
	if !strings.Contains(ctx, answer) {
		panic(fmt.Sprintf("synth: answer %q is not in its context %q", answer, ctx)) // a bug in the templates, not bad input
	}
	return Record{Context: ctx, Question: fill(q.text, person, asked.x, asked.y), Answer: answer, Relation: asked.rel.name}
}

func fill(t, person, x, y string) string {
	return strings.NewReplacer("{P}", person, "{X}", x, "{Y}", y).Replace(t)
}
