package formula

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrDivisionByZero is returned by Evaluate when the expression divides by zero.
var ErrDivisionByZero = errors.New("division by zero")

// Evaluate computes the exact value of a formula such as
// "流=42072;圳=86;(圳-(97510*45921))*流/35864": zero or more assignments
// "variable=integer" followed by one arithmetic expression over integers and
// the assigned variables, separated by ';'. Operators are + - * / with the
// usual precedence and left associativity, brackets, and unary minus (which
// the generator never emits but a reader might).
func Evaluate(formula string) (*big.Rat, error) {
	parts := strings.Split(formula, ";")
	if len(parts) == 0 || strings.TrimSpace(parts[len(parts)-1]) == "" {
		return nil, fmt.Errorf("formula %q: missing expression", formula)
	}
	vars := make(map[rune]*big.Rat, len(parts)-1)
	for _, a := range parts[:len(parts)-1] {
		name, num, ok := strings.Cut(a, "=")
		r, size := utf8.DecodeRuneInString(name)
		if !ok || size == 0 || size != len(name) || unicode.IsDigit(r) || strings.ContainsRune("+-*/()=", r) {
			return nil, fmt.Errorf("formula %q: bad assignment %q", formula, a)
		}
		p := &parser{src: num, vars: nil}
		v, err := p.parseExpr()
		if err == nil && p.pos != len(p.src) {
			err = fmt.Errorf("unexpected %q at offset %d", p.src[p.pos:], p.pos)
		}
		if err != nil {
			return nil, fmt.Errorf("formula %q: assignment %q: %w", formula, a, err)
		}
		vars[r] = v
	}
	p := &parser{src: parts[len(parts)-1], vars: vars}
	v, err := p.parseExpr()
	if err == nil && p.pos != len(p.src) {
		err = fmt.Errorf("unexpected %q at offset %d", p.src[p.pos:], p.pos)
	}
	if err != nil {
		return nil, fmt.Errorf("formula %q: %w", formula, err)
	}
	return v, nil
}

// FormatValue renders v rounded to 2 decimals, half away from zero
// (2.345 → "2.35", -2.345 → "-2.35"), always with exactly two decimals and
// never "-0.00". Rounding is done on the exact rational, so values beyond
// float64's range or precision are rendered exactly.
func FormatValue(v *big.Rat) string {
	// n = round(|v| * 100) half up, on integers.
	num := new(big.Int).Abs(v.Num())
	num.Mul(num, big.NewInt(100))
	den := v.Denom()
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Lsh(r, 1).Cmp(den) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	s := q.String()
	if len(s) < 3 {
		s = strings.Repeat("0", 3-len(s)) + s
	}
	s = s[:len(s)-2] + "." + s[len(s)-2:]
	if v.Sign() < 0 && q.Sign() != 0 {
		s = "-" + s
	}
	return s
}

type parser struct {
	src  string
	pos  int
	vars map[rune]*big.Rat
}

func (p *parser) peek() rune {
	if p.pos >= len(p.src) {
		return 0
	}
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	return r
}

// parseExpr: term (('+'|'-') term)*
func (p *parser) parseExpr() (*big.Rat, error) {
	v, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	for {
		switch p.peek() {
		case '+', '-':
			op := p.peek()
			p.pos++
			w, err := p.parseTerm()
			if err != nil {
				return nil, err
			}
			if op == '+' {
				v.Add(v, w)
			} else {
				v.Sub(v, w)
			}
		default:
			return v, nil
		}
	}
}

// parseTerm: factor (('*'|'/') factor)*
func (p *parser) parseTerm() (*big.Rat, error) {
	v, err := p.parseFactor()
	if err != nil {
		return nil, err
	}
	for {
		switch p.peek() {
		case '*', '/':
			op := p.peek()
			p.pos++
			w, err := p.parseFactor()
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
		default:
			return v, nil
		}
	}
}

// parseFactor: '-' factor | '(' expr ')' | integer | variable
func (p *parser) parseFactor() (*big.Rat, error) {
	r := p.peek()
	switch {
	case r == 0:
		return nil, fmt.Errorf("unexpected end at offset %d", p.pos)
	case r == '-':
		p.pos++
		v, err := p.parseFactor()
		if err != nil {
			return nil, err
		}
		return v.Neg(v), nil
	case r == '(':
		p.pos++
		v, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if p.peek() != ')' {
			return nil, fmt.Errorf("missing ')' at offset %d", p.pos)
		}
		p.pos++
		return v, nil
	case r >= '0' && r <= '9':
		start := p.pos
		for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
		}
		v, ok := new(big.Rat).SetString(p.src[start:p.pos])
		if !ok {
			return nil, fmt.Errorf("bad number %q", p.src[start:p.pos])
		}
		return v, nil
	default:
		v, ok := p.vars[r]
		if !ok {
			return nil, fmt.Errorf("unexpected %q at offset %d", r, p.pos)
		}
		p.pos += utf8.RuneLen(r)
		return new(big.Rat).Set(v), nil
	}
}
