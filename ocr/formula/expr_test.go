package formula

import (
	"errors"
	"math/big"
	"testing"
)

func TestEvaluate(t *testing.T) {
	tests := []struct {
		formula, want string
	}{
		{"1+2*3", "7.00"},
		{"(1+2)*3", "9.00"},
		{"10-4-3", "3.00"},   // left associative
		{"100/10/5", "2.00"}, // left associative
		{"2-3*4/6", "0.00"},  // precedence: 2-2
		{"1/3", "0.33"},
		{"2/3", "0.67"},
		{"-1/8", "-0.13"}, // -0.125 rounds away from zero
		{"1/8", "0.13"},
		{"-1/1000", "0.00"}, // never "-0.00"
		{"流=42072;圳=86;(圳-(97510*45921))*流/35864", "-5252849004.15"},
		{"见=7;池=829;池-((167-23891)/见)", "4218.14"},
		{"a=5;a*a*a", "125.00"},
		{"99999*99999*99999*99999*99999*99999*99999", "99993000209996500034999790000699999.00"},
	}
	for _, tt := range tests {
		v, err := Evaluate(tt.formula)
		if err != nil {
			t.Errorf("Evaluate(%q): %v", tt.formula, err)
			continue
		}
		if got := FormatValue(v); got != tt.want {
			t.Errorf("Evaluate(%q) = %s, want %s", tt.formula, got, tt.want)
		}
	}
}

func TestEvaluateErrors(t *testing.T) {
	for _, f := range []string{"", "1+", "(1+2", "1+2)", "x=3;y+1", "流=1;", "12=3;4", "1/(2-2)", "流=;1", "1 + 2"} {
		if _, err := Evaluate(f); err == nil {
			t.Errorf("Evaluate(%q): no error", f)
		}
	}
	if _, err := Evaluate("a=0;5/a"); !errors.Is(err, ErrDivisionByZero) {
		t.Errorf("division by a zero variable: %v, want ErrDivisionByZero", err)
	}
}

func TestFormatValueHalfAwayFromZero(t *testing.T) {
	for in, want := range map[string]string{"1/200": "0.01", "-1/200": "-0.01", "1/201": "0.00", "5": "5.00", "-12345/100": "-123.45", "2.345": "2.35", "-2.345": "-2.35"} {
		r, ok := new(big.Rat).SetString(in)
		if !ok {
			t.Fatal(in)
		}
		if got := FormatValue(r); got != want {
			t.Errorf("FormatValue(%s) = %s, want %s", in, got, want)
		}
	}
}
