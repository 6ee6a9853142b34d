#include "outpost/device/json_writer.h"

namespace outpost::device {

std::size_t FormatUint(std::uint64_t value, char* out, std::size_t capacity) {
  char tmp[20];
  std::size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0);
  if (n > capacity) return 0;
  for (std::size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

std::size_t FormatInt(std::int64_t value, char* out, std::size_t capacity) {
  if (value >= 0) return FormatUint(static_cast<std::uint64_t>(value), out, capacity);
  if (capacity < 2) return 0;
  // Negate in unsigned arithmetic so INT64_MIN works.
  const std::uint64_t magnitude = 0 - static_cast<std::uint64_t>(value);
  const std::size_t n = FormatUint(magnitude, out + 1, capacity - 1);
  if (n == 0) return 0;
  out[0] = '-';
  return n + 1;
}

std::size_t FormatFixed(std::int64_t scaled, unsigned decimals, char* out, std::size_t capacity) {
  if (decimals > 9) decimals = 9;
  std::uint64_t divisor = 1;
  for (unsigned i = 0; i < decimals; ++i) divisor *= 10;
  const bool negative = scaled < 0;
  const std::uint64_t magnitude =
      negative ? 0 - static_cast<std::uint64_t>(scaled) : static_cast<std::uint64_t>(scaled);
  const std::uint64_t whole = magnitude / divisor;
  std::uint64_t frac = magnitude % divisor;
  unsigned frac_digits = decimals;
  while (frac_digits > 0 && frac % 10 == 0) {  // trim trailing zeros
    frac /= 10;
    --frac_digits;
  }
  char tmp[32];
  std::size_t n = 0;
  if (negative && (whole != 0 || frac_digits != 0)) tmp[n++] = '-';  // never "-0"
  n += FormatUint(whole, tmp + n, sizeof tmp - n);
  if (frac_digits > 0) {
    tmp[n++] = '.';
    for (unsigned i = frac_digits; i > 0; --i) {
      std::uint64_t d = frac;
      for (unsigned k = 1; k < i; ++k) d /= 10;
      tmp[n++] = static_cast<char>('0' + d % 10);
    }
  }
  if (n > capacity) return 0;
  for (std::size_t i = 0; i < n; ++i) out[i] = tmp[i];
  return n;
}

std::int64_t ScaleToFixed(float value, unsigned decimals) {
  if (!(value == value)) return 0;  // NaN
  double v = value;
  for (unsigned i = 0; i < decimals; ++i) v *= 10.0;
  constexpr double kLimit = 9007199254740992.0;  // 2^53
  if (v >= kLimit) return static_cast<std::int64_t>(kLimit);
  if (v <= -kLimit) return -static_cast<std::int64_t>(kLimit);
  return static_cast<std::int64_t>(v < 0 ? v - 0.5 : v + 0.5);
}

void JsonWriter::Put(char c) {
  if (!ok_) return;
  if (len_ + 1 >= cap_) {  // keep room for a terminating NUL
    ok_ = false;
    return;
  }
  buf_[len_++] = c;
  buf_[len_] = '\0';
}

void JsonWriter::Put(std::string_view s) {
  for (char c : s) Put(c);
}

void JsonWriter::Separator() {
  if (need_comma_) Put(',');
  need_comma_ = false;
}

void JsonWriter::BeginObject() {
  Separator();
  Put('{');
}

void JsonWriter::EndObject() {
  Put('}');
  need_comma_ = true;
}

void JsonWriter::Key(std::string_view key) {
  Separator();
  Put('"');
  Put(key);
  Put('"');
  Put(':');
}

void JsonWriter::String(std::string_view value) {
  Put('"');
  Put(value);
  Put('"');
  need_comma_ = true;
}

void JsonWriter::StringSanitized(std::string_view value) {
  Put('"');
  for (char c : value) {
    if (c == '"' || c == '\\') {
      Put('\\');
      Put(c);
    } else {
      Put((c >= 0x20 && c <= 0x7e) ? c : '?');
    }
  }
  Put('"');
  need_comma_ = true;
}

void JsonWriter::Int(std::int64_t value) {
  char tmp[24];
  Put(std::string_view(tmp, FormatInt(value, tmp, sizeof tmp)));
  need_comma_ = true;
}

void JsonWriter::Uint(std::uint64_t value) {
  char tmp[24];
  Put(std::string_view(tmp, FormatUint(value, tmp, sizeof tmp)));
  need_comma_ = true;
}

void JsonWriter::Fixed(std::int64_t scaled, unsigned decimals) {
  char tmp[32];
  Put(std::string_view(tmp, FormatFixed(scaled, decimals, tmp, sizeof tmp)));
  need_comma_ = true;
}

void JsonWriter::Bool(bool value) {
  Put(value ? std::string_view("true") : std::string_view("false"));
  need_comma_ = true;
}

void JsonWriter::Raw(std::string_view text) {
  Put(text);
  need_comma_ = true;
}

}  // namespace outpost::device
