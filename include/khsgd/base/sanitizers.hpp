// KHSGD_ADDRESS_SANITIZER: defined in builds with AddressSanitizer, by GCC (__SANITIZE_ADDRESS__)
// or by Clang (__has_feature(address_sanitizer); Clang 14 does not define GCC's macro). Such builds
// keep the ordinary exit, so that LeakSanitizer looks at the heap, and no function multiversioning.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define KHSGD_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KHSGD_ADDRESS_SANITIZER 1
#endif
#endif
