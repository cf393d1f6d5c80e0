// Package lines finds the 2–3 text lines of a final-round image with
// classic image processing — median, downscale, background flattening,
// morphology, components, then per line a local re-threshold that erases
// noise lines and trims the box — and joins their crops into the one
// fixed-height strip the reader reads. ExtractFiles runs it over folders,
// in parallel and resumably. The image operations it needs (filters,
// components, resizing) are written here, tuned to match OpenCV's.
package lines
