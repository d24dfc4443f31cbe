// Memory that held a secret (an auth value, a private key part) is zeroed before it
// is released, on every path: a freed buffer can be handed out again, read from a
// core dump or swap. Plain C++: no N-API here.
#pragma once

#include <string.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace tss {

// Zeroes `size` bytes at `data` in a way the compiler may not drop as a dead store.
inline void Wipe(void* data, size_t size) {
  if (size != 0) explicit_bzero(data, size);
}

// An allocator that wipes what it frees: every copy and every reallocation of a
// container that uses it is zeroed when it goes away.
template <typename T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() = default;
  template <typename U>
  WipingAllocator(const WipingAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, size_t n) {
    Wipe(p, n * sizeof(T));
    ::operator delete(p);
  }
  template <typename U>
  bool operator==(const WipingAllocator<U>&) const {
    return true;
  }
  template <typename U>
  bool operator!=(const WipingAllocator<U>&) const {
    return false;
  }
};

// Bytes of a secret: auth values, private key material.
using SecretBytes = std::vector<uint8_t, WipingAllocator<uint8_t>>;

// A TPM structure that holds a secret (TPM2B_AUTH, TPM2B_SENSITIVE_CREATE, ...), zeroed
// when the scope that owns it ends, whichever way it ends.
template <typename T>
class Wiped {
 public:
  Wiped() : value_() {}
  ~Wiped() { Wipe(&value_, sizeof value_); }
  Wiped(const Wiped&) = delete;
  Wiped& operator=(const Wiped&) = delete;

  T& operator*() { return value_; }
  T* operator->() { return &value_; }
  T* get() { return &value_; }

 private:
  T value_;
};

}  // namespace tss
