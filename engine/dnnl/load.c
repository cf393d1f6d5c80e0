//go:build !nodnnl

#define DL_LOAD_DEFINE
#include "load.h"

#include <dlfcn.h>
#include <stdio.h>

#define DL_DEFINE(f) __typeof__(&f) dl_##f;
DL_FUNCS(DL_DEFINE)
#undef DL_DEFINE

void (*dl_omp_set_num_threads)(int);

static void *lib;

int dl_load(const char *name, char *err, size_t errlen) {
	if (lib) return 0;
	// RTLD_GLOBAL: libgomp, which libdnnl loads, is then found by name.
	void *h = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
	if (!h) {
		snprintf(err, errlen,
		         "oneDNN library %s not found: install Debian's libdnnl2 (apt-get install libdnnl2), or build dl4img "
		         "with -tags nodnnl",
		         name);
		return 1;
	}
#define DL_RESOLVE(f)                                                                                                \
	if (!(dl_##f = (__typeof__(&f))dlsym(h, #f))) {                                                             \
		snprintf(err, errlen, "%s lacks %s: install Debian's libdnnl2 2.6", name, #f);                          \
		return 1;                                                                                            \
	}
	DL_FUNCS(DL_RESOLVE)
#undef DL_RESOLVE
	dl_omp_set_num_threads = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
	lib = h;
	return 0;
}
