package slide

import (
	"context"
	"fmt"
	"image"
)

// AverageRasters writes the pixel-wise mean of probability rasters of one
// size (stitched predictions of the same slide by several models) to out,
// a tiled raster like the stitched ones (uint8, overviews). Averaging the
// stitched maps is averaging the windows' probabilities before stitching:
// the blend is a weighted mean, and means commute.
func AverageRasters(ctx context.Context, paths []string, out string) error {
	if len(paths) == 0 {
		return fmt.Errorf("average into %s: no rasters", out)
	}
	var rs []*Raster
	defer func() {
		for _, r := range rs {
			r.Close()
		}
	}()
	for _, p := range paths {
		r, err := OpenRaster(p)
		if err != nil {
			return err
		}
		if len(rs) > 0 && r.Size() != rs[0].Size() {
			r.Close()
			return fmt.Errorf("average: %s is %v but %s is %v", p, r.Size(), paths[0], rs[0].Size())
		}
		rs = append(rs, r)
	}
	size := rs[0].Size()
	const tile = 256
	st, err := NewStitcher(out, StitchOptions{Width: size.X, Height: size.Y, Window: tile, Blend: BlendConstant})
	if err != nil {
		return err
	}
	cols, rows := st.Grid()
	buf := make([]float32, tile*tile)
	for row := range rows {
		for col := range cols {
			if err := ctx.Err(); err != nil {
				st.Abort()
				return err
			}
			rect := image.Rect(col*tile, row*tile, (col+1)*tile, (row+1)*tile).Intersect(image.Rectangle{Max: size})
			clear(buf)
			for _, r := range rs {
				vals, err := r.Read(rect, rect.Size())
				if err != nil {
					st.Abort()
					return err
				}
				for y := range rect.Dy() {
					for x := range rect.Dx() {
						buf[y*tile+x] += vals[y*rect.Dx()+x] / float32(len(rs))
					}
				}
			}
			if err := st.Add(col, row, buf); err != nil {
				st.Abort()
				return err
			}
		}
	}
	return st.Close()
}
