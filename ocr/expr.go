package ocr

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// ErrNotComputable marks text that is not a valid expression or divides by
// zero; every error from Eval wraps it.
var ErrNotComputable = errors.New("not computable")

// Eval computes an arithmetic expression exactly with big.Rat.
//
// Grammar (white space is not allowed; labels never contain it):
//
//	expr   = term { ("+" | "-") term }
//	term   = factor { ("*" | "/") factor }
//	factor = number | "(" expr ")"
//	number = digit { digit }
//
// "×" and "÷" are accepted for * and /. Operators of equal precedence
// associate to the left. There is no unary minus: a leading or doubled
// operator ("-3+5", "3*-2") is a recognition error, not an expression the
// competitions produce, so it is reported as not computable. Division by
// zero is not computable.
func Eval(text string) (*big.Rat, error) {
	p := exprParser{s: []rune(text)}
	if len(p.s) == 0 {
		return nil, fmt.Errorf("empty expression: %w", ErrNotComputable)
	}
	// A label is a few characters; a line of labels.txt can be a megabyte
	// of "((((" or "1/3/3/3…", whose recursion or exact arithmetic would
	// never end.
	if len(p.s) > maxExprLen {
		return nil, fmt.Errorf("expression of %d characters, more than %d: %w", len(p.s), maxExprLen, ErrNotComputable)
	}
	v, err := p.expr()
	if err != nil {
		return nil, fmt.Errorf("%q: %w", text, err)
	}
	if p.i != len(p.s) {
		return nil, fmt.Errorf("%q: unexpected %q at %d: %w", text, p.s[p.i], p.i, ErrNotComputable)
	}
	return v, nil
}

// maxExprLen bounds what Eval computes.
const maxExprLen = 1000

type exprParser struct {
	s []rune
	i int
}

func (p *exprParser) peek() rune {
	if p.i < len(p.s) {
		switch r := p.s[p.i]; r {
		case '×':
			return '*'
		case '÷':
			return '/'
		default:
			return r
		}
	}
	return 0
}

func (p *exprParser) expr() (*big.Rat, error) {
	v, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		op := p.peek()
		if op != '+' && op != '-' {
			return v, nil
		}
		p.i++
		w, err := p.term()
		if err != nil {
			return nil, err
		}
		if op == '+' {
			v.Add(v, w)
		} else {
			v.Sub(v, w)
		}
	}
}

func (p *exprParser) term() (*big.Rat, error) {
	v, err := p.factor()
	if err != nil {
		return nil, err
	}
	for {
		op := p.peek()
		if op != '*' && op != '/' {
			return v, nil
		}
		p.i++
		w, err := p.factor()
		if err != nil {
			return nil, err
		}
		if op == '*' {
			v.Mul(v, w)
		} else {
			if w.Sign() == 0 {
				return nil, fmt.Errorf("division by zero: %w", ErrNotComputable)
			}
			v.Quo(v, w)
		}
	}
}

func (p *exprParser) factor() (*big.Rat, error) {
	switch r := p.peek(); {
	case r == '(':
		p.i++
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.peek() != ')' {
			return nil, p.unexpected("')'")
		}
		p.i++
		return v, nil
	case r >= '0' && r <= '9':
		start := p.i
		for p.peek() >= '0' && p.peek() <= '9' {
			p.i++
		}
		// Base 10 explicitly: Rat.SetString would read "012" as octal.
		n, ok := new(big.Int).SetString(string(p.s[start:p.i]), 10)
		if !ok {
			return nil, fmt.Errorf("bad number %q: %w", string(p.s[start:p.i]), ErrNotComputable)
		}
		return new(big.Rat).SetInt(n), nil
	default:
		return nil, p.unexpected("a number or '('")
	}
}

func (p *exprParser) unexpected(want string) error {
	if p.i >= len(p.s) {
		return fmt.Errorf("unexpected end, want %s: %w", want, ErrNotComputable)
	}
	return fmt.Errorf("unexpected %q at %d, want %s: %w", p.s[p.i], p.i, want, ErrNotComputable)
}

// FormatValue writes a value the way result.txt and labels.txt carry it:
// integers in full ("-60"), anything else rounded to exactly two decimals
// with halves away from zero ("2.50", "-0.33"); a value that rounds to zero
// is "0.00", never "-0.00".
func FormatValue(v *big.Rat) string {
	if v.IsInt() {
		return v.Num().String()
	}
	s := v.FloatString(2)
	if s == "-0.00" {
		s = "0.00"
	}
	return s
}

// EvalString is Eval followed by FormatValue; ok is false when the text is
// not computable.
func EvalString(text string) (value string, ok bool) {
	v, err := Eval(text)
	if err != nil {
		return "", false
	}
	return FormatValue(v), true
}

// NormalizeValue rewrites a value written by someone else ("7", "2.5",
// "-0.50") in FormatValue's form, so values compare as strings.
func NormalizeValue(s string) (string, error) {
	s = strings.TrimSpace(s)
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	var v *big.Rat
	ok := digits != "" && strings.Trim(digits, "0123456789.") == "" && strings.Count(digits, ".") <= 1 &&
		digits[0] != '.' && digits[len(digits)-1] != '.'
	if ok {
		// A plain decimal with no prefix is always base 10 for Rat.SetString.
		v, ok = new(big.Rat).SetString(s)
	}
	if !ok {
		return "", fmt.Errorf("value %q is not a decimal number", s)
	}
	return FormatValue(v), nil
}
