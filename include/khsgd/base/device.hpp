// Where a run trains: the CPU or a CUDA GPU.
#pragma once

namespace khsgd {

enum class Device { Cpu, Cuda };

// "cpu" or "cuda", as --device spells it.
inline const char* device_name(Device device) { return device == Device::Cuda ? "cuda" : "cpu"; }

}  // namespace khsgd
