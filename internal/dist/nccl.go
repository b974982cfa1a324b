//go:build nccl

package dist

// The nccl build (the CUDA images; scripts/images.sh, scripts/check_nccl_build.sh):
// c10d.cpp compiles ProcessGroupNCCL in, against nccl.h and the CUDA
// runtime's headers (scripts/libtorch.sh install_cuda_headers, on
// CPLUS_INCLUDE_PATH), and links libtorch 2.1.0's CUDA libraries, whose
// libtorch_cuda.so holds c10d's NCCL code and needs libnccl.so.2.

/*
#cgo CXXFLAGS: -DUSE_C10D_NCCL
#cgo LDFLAGS: -ltorch_cuda -lc10_cuda
*/
import "C"
