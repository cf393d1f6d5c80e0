// Package imagefile reads image files for any kind: PNGs decoded straight
// to gray on a fast path (package inflate: a whole-buffer zlib decoder),
// other files (PNG, JPEG, GIF, BMP) through image.Decode, and the luma that
// both conversions to gray share. Every path checks the size a header
// declares first: a 100-byte file that declares 100000×100000 pixels (a
// decompression bomb) is refused with one line instead of making the
// decoder allocate 40 GB.
package imagefile
