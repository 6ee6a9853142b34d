// A strict little JSON reader: it validates the whole document (so a truncated or garbled
// command is rejected, not half-executed) but keeps only the four members commands use.
#include "outpost/device/command.h"

namespace outpost::device {
namespace {

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  void SkipWs() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool AtEnd() const { return pos_ >= s_.size(); }
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool Consume(char c) {
    if (Peek() != c || AtEnd()) return false;
    ++pos_;
    return true;
  }

  // A string; `content` gets the raw (still escaped) text between the quotes.
  bool String(std::string_view& content) {
    if (!Consume('"')) return false;
    const std::size_t start = pos_;
    while (pos_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        content = s_.substr(start, pos_ - start);
        ++pos_;
        return true;
      }
      if (c < 0x20) return false;  // raw control character
      if (c == '\\') {
        ++pos_;
        if (pos_ >= s_.size()) return false;
        const char e = s_[pos_];
        if (e == 'u') {
          for (int i = 1; i <= 4; ++i) {
            if (pos_ + i >= s_.size() || !IsHex(s_[pos_ + i])) return false;
          }
          pos_ += 4;
        } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' &&
                   e != 'r' && e != 't') {
          return false;
        }
      }
      ++pos_;
    }
    return false;
  }

  // A number per the JSON grammar; `text` gets its characters, `integer` whether it has no
  // fraction or exponent.
  bool Number(std::string_view& text, bool& integer) {
    const std::size_t start = pos_;
    integer = true;
    Consume('-');
    if (Consume('0')) {
    } else if (IsDigit(Peek())) {
      while (IsDigit(Peek())) ++pos_;
    } else {
      return false;
    }
    if (Consume('.')) {
      integer = false;
      if (!IsDigit(Peek())) return false;
      while (IsDigit(Peek())) ++pos_;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      integer = false;
      ++pos_;
      if (Peek() == '+' || Peek() == '-') ++pos_;
      if (!IsDigit(Peek())) return false;
      while (IsDigit(Peek())) ++pos_;
    }
    text = s_.substr(start, pos_ - start);
    return true;
  }

  bool Literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  // Skips any value; `depth` is the nesting of the value itself.
  CommandError SkipValue(int depth) {
    if (depth > kMaxCommandDepth) return CommandError::kTooDeep;
    SkipWs();
    const char c = Peek();
    if (AtEnd()) return CommandError::kNotJson;
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++pos_;
      SkipWs();
      if (Consume(close)) return CommandError::kOk;
      while (true) {
        SkipWs();
        if (c == '{') {
          std::string_view key;
          if (!String(key)) return CommandError::kNotJson;
          SkipWs();
          if (!Consume(':')) return CommandError::kNotJson;
        }
        CommandError e = SkipValue(depth + 1);
        if (e != CommandError::kOk) return e;
        SkipWs();
        if (Consume(',')) continue;
        if (Consume(close)) return CommandError::kOk;
        return CommandError::kNotJson;
      }
    }
    if (c == '"') {
      std::string_view s;
      return String(s) ? CommandError::kOk : CommandError::kNotJson;
    }
    if (c == 't') return Literal("true") ? CommandError::kOk : CommandError::kNotJson;
    if (c == 'f') return Literal("false") ? CommandError::kOk : CommandError::kNotJson;
    if (c == 'n') return Literal("null") ? CommandError::kOk : CommandError::kNotJson;
    std::string_view text;
    bool integer = false;
    return Number(text, integer) ? CommandError::kOk : CommandError::kNotJson;
  }

  std::size_t pos() const { return pos_; }
  void set_pos(std::size_t p) { pos_ = p; }

  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
  static bool IsHex(char c) {
    return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

bool IsIdChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '-';
}

bool IsValidId(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!IsIdChar(c)) return false;
  }
  return true;
}

CommandKind KindOf(std::string_view name) {
  if (name == "setSensorInterval") return CommandKind::kSetSensorInterval;
  if (name == "reboot") return CommandKind::kReboot;
  if (name == "led") return CommandKind::kLed;
  if (name == "certRequest") return CommandKind::kCertRequest;
  if (name == "certInstall") return CommandKind::kCertInstall;
  return CommandKind::kUnknown;
}

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// Standard base64, padded: [A-Za-z0-9+/]*, then up to two '=', a multiple of 4 in all.
bool IsBase64(std::string_view s) {
  if (s.empty() || s.size() > kMaxCertBase64Bytes || s.size() % 4 != 0) return false;
  std::size_t n = s.size();
  std::size_t pad = 0;
  while (pad < 2 && n > 0 && s[n - 1] == '=') --n, ++pad;
  for (std::size_t i = 0; i < n; ++i) {
    if (!IsBase64Char(s[i])) return false;
  }
  return true;
}

}  // namespace

CommandError ParseCommand(std::string_view json, CommandView& out, const char** detail) {
  out = CommandView{};
  const char* ignored = nullptr;
  const char*& why = detail ? *detail : ignored;
  why = "";
  Reader r(json);
  r.SkipWs();
  if (r.AtEnd()) return why = "empty payload", CommandError::kNotJson;
  if (r.Peek() != '{') {
    // Validate first so "not JSON" wins over "not an object" for garbage.
    CommandError e = r.SkipValue(1);
    if (e != CommandError::kOk) {
      return why = e == CommandError::kTooDeep ? "nested too deeply" : "not valid JSON", e;
    }
    return why = "top level is not an object", CommandError::kNotObject;
  }
  r.Consume('{');
  bool have_command = false;
  CommandError field_error = CommandError::kOk;  // first field problem; JSON errors win over it
  auto field_fail = [&](CommandError e, const char* text) {
    if (field_error == CommandError::kOk) {
      field_error = e;
      why = text;
    }
  };
  r.SkipWs();
  if (!r.Consume('}')) {
    while (true) {
      r.SkipWs();
      std::string_view key;
      if (!r.String(key)) return why = "not valid JSON", CommandError::kNotJson;
      r.SkipWs();
      if (!r.Consume(':')) return why = "not valid JSON", CommandError::kNotJson;
      r.SkipWs();
      const std::size_t value_start = r.pos();
      const char c = r.Peek();
      if (key == "command") {
        if (have_command) field_fail(CommandError::kDuplicateKey, "duplicate key \"command\"");
        have_command = true;
        std::string_view s;
        if (c == '"' && r.String(s)) {
          out.name = s;
          out.kind = KindOf(s);
        } else {
          field_fail(CommandError::kBadCommand, "field \"command\": expected a string");
          r.set_pos(value_start);
        }
      } else if (key == "id") {
        if (out.has_id) field_fail(CommandError::kDuplicateKey, "duplicate key \"id\"");
        std::string_view s;
        bool integer = false;
        if (c == '"' && r.String(s)) {
          if (IsValidId(s)) {
            out.has_id = true;
            out.id = s;
          } else {
            field_fail(CommandError::kBadId,
                       "field \"id\": expected 1..64 characters of [A-Za-z0-9_.:-] or an integer");
          }
        } else if (c == 'n' && r.Literal("null")) {
          // null means absent
        } else if ((c == '-' || Reader::IsDigit(c)) && r.Number(s, integer) && integer &&
                   s[0] != '-' && s.size() <= 20) {
          out.has_id = true;
          out.id = s;
          out.id_is_number = true;
        } else {
          field_fail(CommandError::kBadId,
                     "field \"id\": expected 1..64 characters of [A-Za-z0-9_.:-] or an integer");
          r.set_pos(value_start);
        }
      } else if (key == "interval") {
        if (out.has_interval) field_fail(CommandError::kDuplicateKey, "duplicate key \"interval\"");
        std::string_view s;
        bool integer = false;
        bool ok = false;
        if ((c == '-' || Reader::IsDigit(c)) && r.Number(s, integer) && integer && s[0] != '-' &&
            s.size() <= 10) {
          std::uint64_t v = 0;
          for (char d : s) v = v * 10 + static_cast<std::uint64_t>(d - '0');
          if (v <= 0xffffffffull) {
            out.has_interval = true;
            out.interval_ms = static_cast<std::uint32_t>(v);
            ok = true;
          }
        }
        if (!ok) {
          field_fail(CommandError::kBadInterval,
                     "field \"interval\": expected an integer number of ms in [0, 2^32)");
          r.set_pos(value_start);
        }
      } else if (key == "state") {
        if (out.has_state) field_fail(CommandError::kDuplicateKey, "duplicate key \"state\"");
        if (c == 't' && r.Literal("true")) {
          out.has_state = true;
          out.state = true;
        } else if (c == 'f' && r.Literal("false")) {
          out.has_state = true;
          out.state = false;
        } else {
          field_fail(CommandError::kBadState, "field \"state\": expected true or false");
          r.set_pos(value_start);
        }
      } else if (key == "cert") {
        if (out.has_cert) field_fail(CommandError::kDuplicateKey, "duplicate key \"cert\"");
        std::string_view s;
        if (c == '"' && r.String(s) && IsBase64(s)) {
          out.has_cert = true;
          out.cert = s;
        } else {
          field_fail(CommandError::kBadCert,
                     "field \"cert\": expected the base64 of a DER certificate "
                     "(at most 1024 characters)");
          r.set_pos(value_start);
        }
      }
      if (r.pos() == value_start) {  // not consumed above: skip (and validate) it
        CommandError e = r.SkipValue(2);
        if (e != CommandError::kOk) {
          return why = e == CommandError::kTooDeep ? "nested too deeply" : "not valid JSON", e;
        }
      }
      r.SkipWs();
      if (r.Consume(',')) continue;
      if (r.Consume('}')) break;
      return why = "not valid JSON", CommandError::kNotJson;
    }
  }
  r.SkipWs();
  if (!r.AtEnd()) return why = "bytes after the JSON object", CommandError::kNotJson;
  if (field_error != CommandError::kOk) return field_error;
  if (!have_command) return why = "no \"command\" field", CommandError::kMissingCommand;
  return CommandError::kOk;
}

const char* CommandErrorName(CommandError e) {
  switch (e) {
    case CommandError::kOk:
      return "ok";
    case CommandError::kNotJson:
      return "not_json";
    case CommandError::kTooDeep:
      return "too_deep";
    case CommandError::kNotObject:
      return "not_object";
    case CommandError::kDuplicateKey:
      return "duplicate_key";
    case CommandError::kMissingCommand:
      return "missing_command";
    case CommandError::kBadCommand:
      return "bad_command";
    case CommandError::kBadId:
      return "bad_id";
    case CommandError::kBadInterval:
      return "bad_interval";
    case CommandError::kBadState:
      return "bad_state";
    case CommandError::kBadCert:
      return "bad_cert";
  }
  return "unknown";
}

std::uint32_t CommandIdHash(std::string_view id) {
  std::uint32_t h = 2166136261u;
  for (char c : id) {
    h ^= static_cast<std::uint8_t>(c);
    h *= 16777619u;
  }
  return h == 0 ? 1 : h;
}

}  // namespace outpost::device
