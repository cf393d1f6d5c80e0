package reader

import (
	"fmt"

	"github.com/gomlx/gomlx/core/tensors"
)

// Charset maps a reader's characters to its classes (in charset order)
// and back; a CRNN's CTC blank is the class after the last character.
type Charset struct {
	runes []rune
	class map[rune]int32
}

// NewCharset is the charset of the characters of s, in order.
func NewCharset(s string) Charset {
	c := Charset{runes: []rune(s), class: map[rune]int32{}}
	for i, r := range c.runes {
		c.class[r] = int32(i)
	}
	return c
}

// Len is the number of characters.
func (c Charset) Len() int { return len(c.runes) }

// Encode turns text into class ids; it fails on characters outside the
// charset or text longer than maxLen characters.
func (c Charset) Encode(text string, maxLen int) ([]int32, error) {
	ids := make([]int32, 0, len(text))
	for _, r := range text {
		k, ok := c.class[r]
		if !ok {
			return nil, fmt.Errorf("label %q: character %q is not in the charset", text, r)
		}
		if len(ids) == maxLen {
			return nil, fmt.Errorf("label %q: longer than %d characters", text, maxLen)
		}
		ids = append(ids, k)
	}
	return ids, nil
}

// Text turns class ids into text.
func (c Charset) Text(ids []int) (string, error) {
	out := make([]rune, len(ids))
	for i, id := range ids {
		if id < 0 || id >= len(c.runes) {
			return "", fmt.Errorf("decode: class %d outside the charset of %d", id, len(c.runes))
		}
		out[i] = c.runes[id]
	}
	return string(out), nil
}

// Labels encodes texts as a label batch: labels [len(texts), maxLen] int32
// (zero padded) and their lengths [len(texts)] int32. An unlabeled text
// ("") gets a dummy label of length 1 so that the CTC loss stays finite;
// callers ignore its loss.
func (c Charset) Labels(texts []string, maxLen int) (labels, lens *tensors.Tensor, err error) {
	flat := make([]int32, len(texts)*maxLen)
	ls := make([]int32, len(texts))
	for i, t := range texts {
		ids, err := c.Encode(t, maxLen)
		if err != nil {
			return nil, nil, err
		}
		copy(flat[i*maxLen:], ids)
		ls[i] = int32(max(len(ids), 1))
	}
	return tensors.FromFlatDataAndDimensions(flat, len(texts), maxLen), tensors.FromFlatDataAndDimensions(ls, len(texts)), nil
}
