package expr

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/internal/fuzzguard"
)

func TestPrelimEval(t *testing.T) {
	tests := []struct {
		in   string
		want string // a big.Rat string, or "" for not computable
	}{
		{"3+4", "7"},
		{"3-9*7", "-60"},      // * before -
		{"2*3+4", "10"},       // left to right across precedence levels
		{"(3-7)+5", "1"},      // brackets
		{"3*(8+9)", "51"},     // bracket on the right
		{"(1+2)*(3+4)", "21"}, // two pairs
		{"((2))", "2"},        // nested
		{"8-3-2", "3"},        // left associative -
		{"8/4/2", "1"},        // left associative /
		{"7/2", "7/2"},        // exact division
		{"1+2/3", "5/3"},      // / before +
		{"(1+2)/3", "1"},      // bracket before /
		{"6/4*2", "3"},        // equal precedence, left to right
		{"2÷4×3", "3/2"},      // formula-round operator glyphs
		{"12+034", "46"},      // multi-digit, leading zero is decimal
		{"5/0", ""},           // division by zero
		{"5/(3-3)", ""},       // division by a zero bracket
		{"", ""},              // empty
		{"-3+5", ""},          // no unary minus
		{"3*-2", ""},          // doubled operator
		{"3+", ""},            // dangling operator
		{"(3+4", ""},          // unclosed
		{"3+4)", ""},          // unopened
		{"()", ""},            // empty bracket
		{"3 + 4", ""},         // white space
		{"流=4;流", ""},         // no variables
		{"3A+4", ""},          // letter
		{"34", "34"},          // a number alone is an expression
	}
	for _, tc := range tests {
		got, err := Prelim.Eval(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("Prelim.Eval(%q) = %v, want not computable", tc.in, got.RatString())
			} else if !errors.Is(err, ErrNotComputable) {
				t.Errorf("Prelim.Eval(%q) error %v does not wrap ErrNotComputable", tc.in, err)
			}
			continue
		}
		want, _ := new(big.Rat).SetString(tc.want)
		if err != nil || got.Cmp(want) != 0 {
			t.Errorf("Prelim.Eval(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestPrelimFormat(t *testing.T) {
	tests := []struct{ in, want string }{
		{"7", "7"},
		{"-60", "-60"},
		{"0", "0"},
		{"7/2", "3.50"},
		{"1/3", "0.33"},
		{"2/3", "0.67"},
		{"-2/3", "-0.67"},
		{"1/8", "0.13"},   // 0.125: half away from zero
		{"-1/8", "-0.13"}, // symmetric
		{"-1/300", "0.00"},
		{"123456789012345678901234567890", "123456789012345678901234567890"},
	}
	for _, tc := range tests {
		r, _ := new(big.Rat).SetString(tc.in)
		if got := Prelim.Format(r); got != tc.want {
			t.Errorf("Prelim.Format(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"7", "7"}, {"-60", "-60"}, {"+3", "3"}, {"007", "7"}, {"2.5", "2.50"},
		{"2.50", "2.50"}, {"3.0", "3"}, {" 4 ", "4"}, {"-0.001", "0.00"},
		{"1/2", ""}, {"1e3", ""}, {"0x10", ""}, {"abc", ""}, {"", ""}, {".5", ""}, {"5.", ""}, {"1.2.3", ""},
	}
	for _, tc := range tests {
		got, err := Prelim.Normalize(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("Prelim.Normalize(%q) = %q, want error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Prelim.Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestFinalEval(t *testing.T) {
	tests := []struct {
		formula, want string // want: Final.Format of the value
	}{
		{"1+2*3", "7.00"},
		{"(1+2)*3", "9.00"},
		{"10-4-3", "3.00"},   // left associative
		{"100/10/5", "2.00"}, // left associative
		{"2-3*4/6", "0.00"},  // precedence: 2-2
		{"1/3", "0.33"},
		{"2/3", "0.67"},
		{"-1/8", "-0.13"}, // unary minus; -0.125 rounds away from zero
		{"1/8", "0.13"},
		{"3*-2", "-6.00"},
		{"-1/1000", "0.00"}, // never "-0.00"
		{"流=42072;圳=86;(圳-(97510*45921))*流/35864", "-5252849004.15"},
		{"见=7;池=829;池-((167-23891)/见)", "4218.14"},
		{"a=5;a*a*a", "125.00"},
		{"a=2+3;a", "5.00"}, // an assignment's value is an expression over numbers
		{"a=1;a=2;a", "2.00"},
		{"99999*99999*99999*99999*99999*99999*99999", "99993000209996500034999790000699999.00"},
	}
	for _, tt := range tests {
		v, err := Final.Eval(tt.formula)
		if err != nil {
			t.Errorf("Final.Eval(%q): %v", tt.formula, err)
			continue
		}
		if got := Final.Format(v); got != tt.want {
			t.Errorf("Final.Eval(%q) = %s, want %s", tt.formula, got, tt.want)
		}
	}
}

func TestFinalEvalErrors(t *testing.T) {
	for _, f := range []string{"", "1+", "(1+2", "1+2)", "x=3;y+1", "流=1;", "12=3;4", "1/(2-2)", "流=;1",
		"1 + 2", "a=b;1", "a=1;b=a;b", "ab=1;1", "2×3", "=1;1", "(=1;1"} {
		v, err := Final.Eval(f)
		if err == nil {
			t.Errorf("Final.Eval(%q) = %v, want an error", f, v)
		} else if !errors.Is(err, ErrNotComputable) {
			t.Errorf("Final.Eval(%q): %v does not wrap ErrNotComputable", f, err)
		}
	}
	if _, err := Final.Eval("a=0;5/a"); !errors.Is(err, ErrDivisionByZero) {
		t.Errorf("division by a zero variable: %v, want ErrDivisionByZero", err)
	}
	long := strings.Repeat("(", MaxLen/2) + "1" + strings.Repeat(")", MaxLen/2)
	if _, err := Prelim.Eval(long); !errors.Is(err, ErrNotComputable) || !strings.Contains(err.Error(), "more than") {
		t.Errorf("%d characters: %v, want refused", len(long), err)
	}
	if v, err := Prelim.Eval(long[1 : len(long)-1]); err != nil || v.Cmp(big.NewRat(1, 1)) != 0 {
		t.Errorf("%d characters: %v, %v; want 1", MaxLen-1, v, err)
	}
}

func TestFinalFormat(t *testing.T) {
	for in, want := range map[string]string{"1/200": "0.01", "-1/200": "-0.01", "1/201": "0.00", "5": "5.00",
		"-5": "-5.00", "-12345/100": "-123.45", "2.345": "2.35", "-2.345": "-2.35", "-1/300": "0.00"} {
		r, ok := new(big.Rat).SetString(in)
		if !ok {
			t.Fatal(in)
		}
		if got := Final.Format(r); got != want {
			t.Errorf("Final.Format(%s) = %s, want %s", in, got, want)
		}
	}
	if v, ok := Final.Value("不=5;不*2"); v != "10.00" || !ok {
		t.Errorf("Final.Value: %q %v", v, ok)
	}
	if v, ok := Final.Value("海=3;1/(海-3)"); v != "" || ok {
		t.Errorf("Final.Value of a division by zero: %q %v", v, ok)
	}
	if v, err := Final.Normalize("7"); v != "7.00" || err != nil {
		t.Errorf("Final.Normalize(7) = %q, %v", v, err)
	}
}

// FuzzEval: no input panics or is refused without ErrNotComputable; a
// value's text normalizes to itself; the dialects agree where their
// grammars overlap (the final round's is the preliminary one's with unary
// minus and variables, without the glyphs).
func FuzzEval(f *testing.F) {
	for _, s := range []string{"3-9*7", "(1+2)/3", "2÷4×3", "-3+5", "流=42072;圳=86;(圳-(97510*45921))*流/35864",
		"a=0;5/a", "((((1", "1/3/3/3", "12+034", "a=1;a=2;-a", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		defer fuzzguard.Deadline()()
		var vals [2]*big.Rat
		for i, d := range []Dialect{Prelim, Final} {
			v, err := d.Eval(s)
			if err != nil {
				if !errors.Is(err, ErrNotComputable) {
					t.Fatalf("%+v.Eval(%q): %v does not wrap ErrNotComputable", d, s, err)
				}
				continue
			}
			vals[i] = v
			text := d.Format(v)
			// Except that in the preliminary dialect a non-integer that
			// rounds to one ("1999/1000": "2.00") reads back as the
			// integer ("2"); its labels hold no division.
			roundsToInt := !d.FixedDecimals && !v.IsInt() && strings.HasSuffix(text, ".00")
			if n, err := d.Normalize(text); err != nil || n != text && !roundsToInt {
				t.Fatalf("%+v: Normalize(Format(%q) = %q) = %q, %v", d, s, text, n, err)
			}
		}
		if vals[0] != nil && !strings.ContainsAny(s, "×÷") && (vals[1] == nil || vals[0].Cmp(vals[1]) != 0) {
			t.Fatalf("%q: preliminary %v, final %v", s, vals[0], vals[1])
		}
	})
}
