// Package imagefile reads image files for any kind: PNGs decoded straight
// to gray on a fast path (package inflate: a whole-buffer zlib decoder),
// other files through image.Decode, and the luma that both conversions to
// gray share.
package imagefile
