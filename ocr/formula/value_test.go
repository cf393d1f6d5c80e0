package formula

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/ocr/expr"
)

func TestFinalValue(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"流=42072;圳=86;(圳-(97510*45921))*流/35864", "-5252849004.15"},
		{"不=5;不*2", "10.00"},
		{"海=3;河=7;海/河", "0.43"},
		{"海=3;1/(海-3)", ""}, // division by zero
		{"海=3;河+1", ""},     // undefined variable
		{"海=3;(海+1", ""},    // unbalanced
		{"", ""},            // nothing read
		{"12+3*4", "24.00"}, // no assignment
		{"99999*99999*99999*99999*99999", "9999500009999900000499999.00"},
	} {
		if got, _ := expr.Final.Value(c.text); got != c.want {
			t.Errorf("expr.Final.Value(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

func TestWriteResult(t *testing.T) {
	var b bytes.Buffer
	if err := WriteResult(&b, []string{"不=5;不*2", "海=3;1/(海-3)", ""}); err != nil {
		t.Fatal(err)
	}
	if want := "不=5;不*2 10.00\n海=3;1/(海-3) \n \n"; b.String() != want {
		t.Errorf("result.txt = %q, want %q", b.String(), want)
	}
}

func TestCharset(t *testing.T) {
	if n := charset.Len(); n != 10+8+26 {
		t.Errorf("charset has %d characters, want 44", n)
	}
	for _, c := range []struct{ text, value string }{
		{"x=1;x", ""},                            // not in the charset
		{strings.Repeat("1", MaxLabelLen+1), ""}, // too long
		{"流=1;流+", ""},                           // does not evaluate
		{"流=1;流+1", "two"},                       // a value that is no number
	} {
		if err := checkLabel(c.text, c.value); err == nil {
			t.Errorf("label %q %q accepted", c.text, c.value)
		}
	}
	for _, c := range []struct{ text, value string }{{"烧=1;(烧)", ""}, {"烧=1;(烧)", "1.00"}, {"1/3", "0.3"}} {
		if err := checkLabel(c.text, c.value); err != nil {
			t.Errorf("label %q %q: %v", c.text, c.value, err)
		}
	}
}

func TestScoreTexts(t *testing.T) {
	xs := []*example{
		{Text: "不=5;不*2", Value: "10.00"},
		{Text: "海=3;海+1", Value: "4"}, // a value written otherwise
		{Text: "河=1;2/河", Value: "2.00"},
		{Text: "河=2;4/河"}, // value from the text
	}
	s, err := scoreTexts(xs, []string{"不=5;不*2", "海=3;1+海", "河=1;2/", "河=2;4/河"})
	if err != nil {
		t.Fatal(err)
	}
	if s.SeqAcc != 0.5 || s.ValueAcc != 0.75 || s.Computable != 0.75 {
		t.Errorf("scores %+v, want seq 0.5, value 0.75 (海+1 = 1+海), computable 0.75", s)
	}
	if s.CharAcc <= 0.8 || s.CharAcc >= 1 {
		t.Errorf("char accuracy %g", s.CharAcc)
	}
}

func TestJobParamsValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(p *JobParams)
	}{
		{"strip height", func(p *JobParams) { p.StripHeight = 20 }},
		{"strip width", func(p *JobParams) { p.StripWidth = 30 }},
		{"ensemble", func(p *JobParams) { p.Ensemble = 0 }},
		{"member", func(p *JobParams) { p.Member = 1 }},
		{"recombine", func(p *JobParams) { p.Recombine = 2 }},
		{"train size", func(p *JobParams) { p.TrainSize = 0 }},
		{"image width", func(p *JobParams) { p.ImageMaxWidth = 50 }},
	} {
		p := jobDefaults().(*JobParams)
		if err := p.Validate(); err != nil {
			t.Fatalf("defaults: %v", err)
		}
		c.mod(p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}
