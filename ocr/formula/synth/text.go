package synth

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// variableSource is the poem the variable names are drawn from: one
// character position uniformly, so 不, which appears twice, is twice as
// likely as each other character.
const variableSource = "君不见黄河之水天上来奔流到海不复回烟锁池塘柳深圳铁板烧"

// VariableChars lists the distinct variable characters in first-appearance
// order. There are 26 (the issue text says 24; the poem lines it quotes have
// 26 distinct characters).
var VariableChars = func() string {
	var b strings.Builder
	seen := map[rune]bool{}
	for _, r := range variableSource {
		if !seen[r] {
			seen[r] = true
			b.WriteRune(r)
		}
	}
	return b.String()
}()

// Charset is every character a formula label (without its value) can hold:
// digits, operators, brackets, '=', ';' and the variable characters.
var Charset = "0123456789+-*/()=;" + VariableChars

var variableRunes = []rune(variableSource)

func randVariable(rng *rand.Rand) rune {
	return variableRunes[rng.IntN(len(variableRunes))]
}

// randNumber draws the digit count uniformly in 1..5 and then the value
// uniformly among numbers of that many digits without leading zeros, so short
// and long numbers are equally frequent.
func randNumber(rng *rand.Rand) string {
	digits := 1 + rng.IntN(5)
	if digits == 1 {
		return strconv.Itoa(rng.IntN(10))
	}
	lo := 1
	for range digits - 1 {
		lo *= 10
	}
	return strconv.Itoa(lo + rng.IntN(9*lo))
}

// randFormulaLines draws 1 or 2 assignments and one expression that uses
// every assigned variable at least once. The value may be undefined
// (division by zero); the caller evaluates and redraws.
func randFormulaLines(rng *rand.Rand) []string {
	nv := 1 + rng.IntN(2)
	vars := make([]rune, 0, nv)
	for len(vars) < nv {
		v := randVariable(rng)
		if len(vars) == 1 && vars[0] == v {
			continue
		}
		vars = append(vars, v)
	}
	lines := make([]string, 0, nv+1)
	for _, v := range vars {
		lines = append(lines, string(v)+"="+randNumber(rng))
	}
	// 3..5 operands, the variables among them at random places.
	n := 3 + rng.IntN(3)
	leaves := make([]string, n)
	for i := range leaves {
		leaves[i] = randNumber(rng)
	}
	for i, p := range rng.Perm(n)[:nv] {
		leaves[p] = string(vars[i])
	}
	lines = append(lines, randTree(rng, leaves, true))
	return lines
}

func randTree(rng *rand.Rand, leaves []string, top bool) string {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1 + rng.IntN(len(leaves)-1)
	op := "+-*/"[rng.IntN(4)]
	s := randTree(rng, leaves[:k], false) + string(op) + randTree(rng, leaves[k:], false)
	if !top && rng.IntN(2) == 0 {
		s = "(" + s + ")"
	}
	return s
}
