// Package device chooses where tensors live and in which float type: CUDA
// when libtorch sees a GPU, else the CPU. It is the one place that talks to
// gotch about devices, and its tests prove the libtorch toolchain that
// scripts/setup.sh installs (gotch builds, computes and trains on CPU).
package device
