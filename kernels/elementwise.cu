// placeholder: kernels to come
#include "common/f2i_device.h"
