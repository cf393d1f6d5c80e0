// Package expr owns the competitions' arithmetic: one grammar that parses
// the preliminary round's expressions ("3-9*7") and the final round's
// formulas ("流=42072;圳=86;(圳-(97510*45921))*流/35864") and evaluates them
// exactly with math/big, and the way values are written in labels.txt and
// result.txt. What differs between the rounds is a Dialect's options, not
// a second parser.
package expr

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrNotComputable marks text that is not a valid expression or divides by
// zero; every error from Eval wraps it.
var ErrNotComputable = errors.New("not computable")

// ErrDivisionByZero marks an expression that divides by zero; it wraps
// ErrNotComputable.
var ErrDivisionByZero = fmt.Errorf("division by zero: %w", ErrNotComputable)

// MaxLen bounds what Eval computes, in characters: a label is a few dozen;
// a line of labels.txt can be a megabyte of "((((" or "1/3/3/3…", whose
// recursion or exact arithmetic would never end.
const MaxLen = 1000

// Dialect is what one round's texts may hold beyond the common grammar
// (white space is never allowed; labels never contain it):
//
//	formula    = { assignment ";" } expr      (assignments: Variables)
//	assignment = variable "=" expr            (over numbers only)
//	expr       = term { ("+" | "-") term }
//	term       = factor { ("*" | "/") factor }
//	factor     = number | "(" expr ")"
//	           | "-" factor                   (UnaryMinus)
//	           | variable                     (assigned before)
//	number     = digit { digit }              (decimal; leading zeros allowed)
//	variable   = one character that is not a digit, an operator, a bracket, "=" or ";"
//
// Operators of equal precedence associate to the left; division is exact;
// division by zero is not computable.
type Dialect struct {
	// UnaryMinus lets "-" negate a factor ("-3+5", "3*-2"). The
	// preliminary round's labels never hold one, so there a leading or
	// doubled operator is a recognition error, not an expression.
	UnaryMinus bool
	// Glyphs reads "×" and "÷" as "*" and "/".
	Glyphs bool
	// Variables allows assignments "v=expr;" before the expression, which
	// may then use v.
	Variables bool
	// FixedDecimals makes Format write every value with two decimals
	// ("125.00"); without it integers are written in full ("-60").
	FixedDecimals bool
}

var (
	// Prelim is the preliminary round's: expressions over numbers,
	// "×"/"÷" accepted, integers written in full.
	Prelim = Dialect{Glyphs: true}
	// Final is the final round's: assignments, unary minus, every value
	// with two decimals.
	Final = Dialect{UnaryMinus: true, Variables: true, FixedDecimals: true}
)

// Eval computes text exactly.
func (d Dialect) Eval(text string) (*big.Rat, error) {
	n := utf8.RuneCountInString(text)
	if n == 0 {
		return nil, fmt.Errorf("empty expression: %w", ErrNotComputable)
	}
	if n > MaxLen {
		return nil, fmt.Errorf("expression of %d characters, more than %d: %w", n, MaxLen, ErrNotComputable)
	}
	vars := map[rune]*big.Rat{}
	body := text
	if d.Variables {
		parts := strings.Split(text, ";")
		for _, a := range parts[:len(parts)-1] {
			name, v, err := d.assignment(a)
			if err != nil {
				return nil, fmt.Errorf("%q: assignment %q: %w", text, a, err)
			}
			vars[name] = v
		}
		body = parts[len(parts)-1]
	}
	v, err := d.parse(body, vars)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", text, err)
	}
	return v, nil
}

// assignment parses "v=expr", whose expression uses no variables.
func (d Dialect) assignment(a string) (rune, *big.Rat, error) {
	name, value, ok := strings.Cut(a, "=")
	r, size := utf8.DecodeRuneInString(name)
	if !ok || size == 0 || size != len(name) || !isVariable(r) {
		return 0, nil, fmt.Errorf("want variable=value: %w", ErrNotComputable)
	}
	v, err := d.parse(value, nil)
	return r, v, err
}

func isVariable(r rune) bool {
	return !unicode.IsDigit(r) && !strings.ContainsRune("+-*/()=;", r)
}

// parse evaluates one expression over vars.
func (d Dialect) parse(s string, vars map[rune]*big.Rat) (*big.Rat, error) {
	p := parser{d: d, s: []rune(s), vars: vars}
	v, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected %q at %d: %w", p.s[p.i], p.i, ErrNotComputable)
	}
	return v, nil
}

type parser struct {
	d    Dialect
	s    []rune
	i    int
	vars map[rune]*big.Rat
}

// peek is the next character, the glyphs read as their operators; 0 at
// the end.
func (p *parser) peek() rune {
	if p.i >= len(p.s) {
		return 0
	}
	r := p.s[p.i]
	if p.d.Glyphs {
		switch r {
		case '×':
			return '*'
		case '÷':
			return '/'
		}
	}
	return r
}

func (p *parser) expr() (*big.Rat, error) {
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

func (p *parser) term() (*big.Rat, error) {
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
				return nil, ErrDivisionByZero
			}
			v.Quo(v, w)
		}
	}
}

func (p *parser) factor() (*big.Rat, error) {
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
	case r == '-' && p.d.UnaryMinus:
		p.i++
		v, err := p.factor()
		if err != nil {
			return nil, err
		}
		return v.Neg(v), nil
	case r >= '0' && r <= '9':
		start := p.i
		for p.peek() >= '0' && p.peek() <= '9' {
			p.i++
		}
		// Base 10 explicitly: Rat.SetString would read "0x12" in base 16.
		n, ok := new(big.Int).SetString(string(p.s[start:p.i]), 10)
		if !ok {
			return nil, fmt.Errorf("bad number %q: %w", string(p.s[start:p.i]), ErrNotComputable)
		}
		return new(big.Rat).SetInt(n), nil
	default:
		if v, ok := p.vars[r]; ok {
			p.i++
			return new(big.Rat).Set(v), nil
		}
		return nil, p.unexpected("a number or '('")
	}
}

func (p *parser) unexpected(want string) error {
	if p.i >= len(p.s) {
		return fmt.Errorf("unexpected end, want %s: %w", want, ErrNotComputable)
	}
	return fmt.Errorf("unexpected %q at %d, want %s: %w", p.s[p.i], p.i, want, ErrNotComputable)
}

// Format writes a value the way labels.txt and result.txt carry it:
// rounded to two decimals with halves away from zero ("2.50", "-0.33"),
// integers in full ("-60") unless FixedDecimals ("-60.00"); a value that
// rounds to zero is "0.00", never "-0.00". Rounding is done on the exact
// rational, so values beyond float64's range are written exactly.
func (d Dialect) Format(v *big.Rat) string {
	if v.IsInt() && !d.FixedDecimals {
		return v.Num().String()
	}
	s := v.FloatString(2)
	if s == "-0.00" {
		s = "0.00"
	}
	return s
}

// Value is Eval followed by Format; ok is false (and value "") when text
// is not computable.
func (d Dialect) Value(text string) (value string, ok bool) {
	v, err := d.Eval(text)
	if err != nil {
		return "", false
	}
	return d.Format(v), true
}

// Normalize rewrites a value written by someone else ("7", "2.5",
// "-0.50") in Format's form, so values compare as strings.
func (d Dialect) Normalize(s string) (string, error) {
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
	return d.Format(v), nil
}
