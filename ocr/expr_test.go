package ocr

import (
	"errors"
	"math/big"
	"testing"
)

func TestEval(t *testing.T) {
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
		{"3A+4", ""},          // letter
		{"34", "34"},          // a number alone is an expression
	}
	for _, tc := range tests {
		got, err := Eval(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("Eval(%q) = %v, want not computable", tc.in, got.RatString())
			} else if !errors.Is(err, ErrNotComputable) {
				t.Errorf("Eval(%q) error %v does not wrap ErrNotComputable", tc.in, err)
			}
			continue
		}
		want, _ := new(big.Rat).SetString(tc.want)
		if err != nil || got.Cmp(want) != 0 {
			t.Errorf("Eval(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestFormatValue(t *testing.T) {
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
		if got := FormatValue(r); got != tc.want {
			t.Errorf("FormatValue(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestNormalizeValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"7", "7"}, {"-60", "-60"}, {"+3", "3"}, {"007", "7"}, {"2.5", "2.50"},
		{"2.50", "2.50"}, {"3.0", "3"}, {" 4 ", "4"}, {"-0.001", "0.00"},
		{"1/2", ""}, {"1e3", ""}, {"0x10", ""}, {"abc", ""}, {"", ""}, {".5", ""}, {"5.", ""}, {"1.2.3", ""},
	}
	for _, tc := range tests {
		got, err := NormalizeValue(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("NormalizeValue(%q) = %q, want error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeValue(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
