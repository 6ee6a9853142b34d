// Allocation-free JSON writing into a caller-provided char buffer, with a fixed-point number
// formatter that needs no printf float support (newlib-nano has none by default).
// Ownership: borrows the buffer. Thread: single owner. Errors: overflow is sticky; ok() is false
// and the text must not be used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace outpost::device {

// Writes `scaled / 10^decimals` as a JSON number with at most `decimals` fraction digits and no
// trailing zeros: (2250, 2) -> "22.5", (-5, 2) -> "-0.05", (2200, 2) -> "22", (0, 2) -> "0".
// `decimals` <= 9. Returns the bytes written, or 0 if `capacity` is too small (nothing written).
std::size_t FormatFixed(std::int64_t scaled, unsigned decimals, char* out, std::size_t capacity);

// Rounds `value * 10^decimals` half away from zero, saturating at +-2^53 (NaN -> 0).
std::int64_t ScaleToFixed(float value, unsigned decimals);

class JsonWriter {
 public:
  JsonWriter(char* buffer, std::size_t capacity) : buf_(buffer), cap_(capacity) {}

  void BeginObject();
  void EndObject();
  // Key() then exactly one value. Keys and string values are written as given: the caller only
  // passes text that needs no escaping, or uses StringSanitized().
  void Key(std::string_view key);
  void String(std::string_view value);
  // Printable ASCII is copied ('"' and '\' escaped); anything else becomes '?'.
  void StringSanitized(std::string_view value);
  void Int(std::int64_t value);
  void Uint(std::uint64_t value);
  void Fixed(std::int64_t scaled, unsigned decimals);
  void Bool(bool value);
  void Raw(std::string_view text);  // appended verbatim (e.g. an already-JSON number)

  bool ok() const { return ok_; }
  std::size_t size() const { return len_; }
  std::string_view view() const { return std::string_view(buf_, len_); }

 private:
  void Put(char c);
  void Put(std::string_view s);
  void Separator();

  char* buf_;
  std::size_t cap_;
  std::size_t len_ = 0;
  bool ok_ = true;
  bool need_comma_ = false;
};

// Writes an unsigned/signed integer in decimal; returns bytes written (0 if it does not fit).
std::size_t FormatUint(std::uint64_t value, char* out, std::size_t capacity);
std::size_t FormatInt(std::int64_t value, char* out, std::size_t capacity);

}  // namespace outpost::device
