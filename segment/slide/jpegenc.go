package slide

/*
#cgo pkg-config: libjpeg
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>

struct dl4img_err {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	char msg[JMSG_LENGTH_MAX];
};

static void dl4img_on_error(j_common_ptr c) {
	struct dl4img_err *e = (struct dl4img_err *)c->err;
	(*c->err->format_message)(c, e->msg);
	longjmp(e->jb, 1);
}

// dl4img_encode_rgbx compresses 4-byte RGBX pixels with libjpeg-turbo into a
// malloc'd buffer (*out, *outsize; the caller frees it). Returns 0 on
// success, otherwise 1 with msg (JMSG_LENGTH_MAX bytes) filled.
static int dl4img_encode_rgbx(const unsigned char *pix, int w, int h, int stride, int quality,
		unsigned char **out, unsigned long *outsize, char *msg) {
	struct jpeg_compress_struct c;
	struct dl4img_err e;
	*out = NULL;
	*outsize = 0;
	c.err = jpeg_std_error(&e.pub);
	e.pub.error_exit = dl4img_on_error;
	if (setjmp(e.jb)) {
		jpeg_destroy_compress(&c);
		memcpy(msg, e.msg, JMSG_LENGTH_MAX);
		if (*out) {
			free(*out);
			*out = NULL;
		}
		return 1;
	}
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, out, outsize);
	c.image_width = w;
	c.image_height = h;
	c.input_components = 4;
	c.in_color_space = JCS_EXT_RGBX;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		JSAMPROW row = (JSAMPROW)(pix + (size_t)c.next_scanline * stride);
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	return 0;
}
*/
import "C"

import (
	"errors"
	"image"
	"io"
	"unsafe"
)

// encodeJPEG writes an opaque RGBA image as baseline JPEG (4:2:0, like vips)
// through libjpeg-turbo, which is several times faster than image/jpeg and
// keeps tile export ahead of `vips dzsave`.
func encodeJPEG(w io.Writer, m *image.RGBA, quality int) error {
	b := m.Rect
	if b.Empty() {
		return errors.New("jpeg: empty image")
	}
	var out *C.uchar
	var size C.ulong
	var msg [C.JMSG_LENGTH_MAX]C.char
	pix := m.Pix[m.PixOffset(b.Min.X, b.Min.Y):]
	if C.dl4img_encode_rgbx((*C.uchar)(unsafe.Pointer(&pix[0])), C.int(b.Dx()), C.int(b.Dy()), C.int(m.Stride),
		C.int(quality), &out, &size, &msg[0]) != 0 {
		return errors.New("jpeg: " + C.GoString(&msg[0]))
	}
	defer C.free(unsafe.Pointer(out))
	_, err := w.Write(unsafe.Slice((*byte)(unsafe.Pointer(out)), int(size)))
	return err
}
