// yaml-cpp throws; every exception is caught here and turned into a Status naming the key.
#include "outpost/node/sim/scenario.h"

#include <yaml-cpp/yaml.h>

#include <map>
#include <set>
#include <sstream>

#include "outpost/base/file.h"

namespace outpost::node::sim {
namespace {

std::string Describe(const YAML::Node& n) {
  if (n.IsScalar()) return "\"" + n.Scalar() + "\"";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a map";
  return "null";
}

Status CheckKeys(const YAML::Node& map, const std::string& path,
                 const std::set<std::string>& allowed) {
  for (const auto& kv : map) {
    const std::string key = kv.first.Scalar();
    if (allowed.count(key) == 0) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return InvalidArgument((path.empty() ? "" : path + ".") + key + ": unknown key (expected " +
                             list + ")");
    }
  }
  return Status::Ok();
}

Status GetNumber(const YAML::Node& map, const std::string& path, const char* key, double min,
                 double max, double& out) {
  const YAML::Node n = map[key];
  if (!n) return Status::Ok();
  const std::string full = (path.empty() ? "" : path + ".") + key;
  double v = 0;
  if (!n.IsScalar() || !YAML::convert<double>::decode(n, v) || !(v >= min && v <= max)) {
    std::ostringstream msg;
    msg << full << ": expected a number in [" << min << ", " << max << "], got " << Describe(n);
    return InvalidArgument(msg.str());
  }
  out = v;
  return Status::Ok();
}

Status GetInt(const YAML::Node& map, const std::string& path, const char* key, int min, int max,
              int& out) {
  double v = out;
  OUTPOST_RETURN_IF_ERROR(GetNumber(map, path, key, min, max, v));
  if (v != static_cast<int>(v)) {
    return InvalidArgument(path + "." + key + ": expected a whole number, got " +
                           Describe(map[key]));
  }
  out = static_cast<int>(v);
  return Status::Ok();
}

Status GetMs(const YAML::Node& map, const std::string& path, const char* key,
             std::int64_t& out_ms) {
  double s = static_cast<double>(out_ms) / 1000.0;
  OUTPOST_RETURN_IF_ERROR(GetNumber(map, path, key, 0, 1e9, s));
  out_ms = static_cast<std::int64_t>(s * 1000.0 + 0.5);
  return Status::Ok();
}

Status ParseSection(const YAML::Node& models, const char* name,
                    const std::map<std::string, double*>& fields) {
  const YAML::Node n = models[name];
  if (!n) return Status::Ok();
  const std::string path = std::string("models.") + name;
  if (!n.IsMap()) return InvalidArgument(path + ": expected a map, got " + Describe(n));
  std::set<std::string> allowed;
  for (const auto& f : fields) allowed.insert(f.first);
  OUTPOST_RETURN_IF_ERROR(CheckKeys(n, path, allowed));
  for (const auto& f : fields) {
    OUTPOST_RETURN_IF_ERROR(GetNumber(n, path, f.first.c_str(), -1e6, 1e6, *f.second));
  }
  return Status::Ok();
}

Status ParseModels(const YAML::Node& m, ModelParams& p) {
  if (!m.IsMap()) return InvalidArgument("models: expected a map, got " + Describe(m));
  OUTPOST_RETURN_IF_ERROR(CheckKeys(
      m, "models", {"temperature", "humidity", "motion", "battery", "rssi", "read_errors"}));
  OUTPOST_RETURN_IF_ERROR(ParseSection(m, "temperature",
                                       {{"mean_c", &p.temperature_mean_c},
                                        {"spread_c", &p.temperature_spread_c},
                                        {"daily_amplitude_c", &p.temperature_daily_amplitude_c},
                                        {"noise_c", &p.temperature_noise_c}}));
  OUTPOST_RETURN_IF_ERROR(ParseSection(m, "humidity",
                                       {{"mean_pct", &p.humidity_mean_pct},
                                        {"spread_pct", &p.humidity_spread_pct},
                                        {"per_degree_pct", &p.humidity_per_degree_pct},
                                        {"noise_pct", &p.humidity_noise_pct}}));
  double from = p.occupied_from_h, to = p.occupied_to_h;
  OUTPOST_RETURN_IF_ERROR(ParseSection(m, "motion",
                                       {{"occupied_from_h", &from},
                                        {"occupied_to_h", &to},
                                        {"probability_occupied", &p.motion_probability_occupied},
                                        {"probability_empty", &p.motion_probability_empty}}));
  if (m["motion"]) {
    OUTPOST_RETURN_IF_ERROR(
        GetInt(m["motion"], "models.motion", "occupied_from_h", 0, 24, p.occupied_from_h));
    OUTPOST_RETURN_IF_ERROR(
        GetInt(m["motion"], "models.motion", "occupied_to_h", 0, 24, p.occupied_to_h));
    OUTPOST_RETURN_IF_ERROR(GetNumber(m["motion"], "models.motion", "probability_occupied", 0, 1,
                                      p.motion_probability_occupied));
    OUTPOST_RETURN_IF_ERROR(GetNumber(m["motion"], "models.motion", "probability_empty", 0, 1,
                                      p.motion_probability_empty));
  }
  OUTPOST_RETURN_IF_ERROR(ParseSection(m, "battery",
                                       {{"start_min_pct", &p.battery_start_min_pct},
                                        {"start_max_pct", &p.battery_start_max_pct},
                                        {"drain_pct_per_hour", &p.battery_drain_pct_per_hour}}));
  if (m["battery"]) {
    const YAML::Node b = m["battery"];
    OUTPOST_RETURN_IF_ERROR(
        GetNumber(b, "models.battery", "start_min_pct", 0, 100, p.battery_start_min_pct));
    OUTPOST_RETURN_IF_ERROR(
        GetNumber(b, "models.battery", "start_max_pct", 0, 100, p.battery_start_max_pct));
    OUTPOST_RETURN_IF_ERROR(
        GetNumber(b, "models.battery", "drain_pct_per_hour", 0, 1e6, p.battery_drain_pct_per_hour));
    if (p.battery_start_min_pct > p.battery_start_max_pct) {
      return InvalidArgument("models.battery.start_min_pct: must not exceed start_max_pct");
    }
  }
  OUTPOST_RETURN_IF_ERROR(ParseSection(m, "rssi",
                                       {{"mean_dbm", &p.rssi_mean_dbm},
                                        {"drift_db", &p.rssi_drift_db},
                                        {"jitter_db", &p.rssi_jitter_db}}));
  OUTPOST_RETURN_IF_ERROR(ParseSection(m, "read_errors", {{"rate", &p.read_error_rate}}));
  if (m["read_errors"]) {
    OUTPOST_RETURN_IF_ERROR(
        GetNumber(m["read_errors"], "models.read_errors", "rate", 0, 1, p.read_error_rate));
  }
  return Status::Ok();
}

Status ParseFault(const YAML::Node& n, const std::string& path, Fault& f) {
  if (!n.IsMap()) return InvalidArgument(path + ": expected a map, got " + Describe(n));
  const YAML::Node type = n["type"];
  if (!type || !type.IsScalar()) {
    return InvalidArgument(path +
                           ".type: required (broker_outage, blackhole, clock_skew, "
                           "reboot_storm, malformed, low_battery)");
  }
  const std::string t = type.Scalar();
  std::set<std::string> allowed = {"type", "at_s"};
  bool needs_duration = false;
  if (t == "broker_outage") {
    f.kind = FaultKind::kBrokerOutage;
    allowed.insert("duration_s");
    needs_duration = true;
  } else if (t == "blackhole") {
    f.kind = FaultKind::kBlackhole;
    allowed.insert({"duration_s", "fraction", "devices"});
    needs_duration = true;
  } else if (t == "clock_skew") {
    f.kind = FaultKind::kClockSkew;
    allowed.insert({"fraction", "devices", "max_skew_s"});
  } else if (t == "reboot_storm") {
    f.kind = FaultKind::kRebootStorm;
    allowed.insert({"fraction", "devices", "spread_s"});
  } else if (t == "malformed") {
    f.kind = FaultKind::kMalformed;
    allowed.insert({"duration_s", "rate_per_s"});
  } else if (t == "low_battery") {
    f.kind = FaultKind::kLowBattery;
    allowed.insert({"fraction", "devices", "battery_pct"});
  } else {
    return InvalidArgument(path + ".type: unknown fault \"" + t +
                           "\" (expected broker_outage, blackhole, clock_skew, reboot_storm, "
                           "malformed, low_battery)");
  }
  OUTPOST_RETURN_IF_ERROR(CheckKeys(n, path, allowed));
  OUTPOST_RETURN_IF_ERROR(GetMs(n, path, "at_s", f.at_ms));
  OUTPOST_RETURN_IF_ERROR(GetMs(n, path, "duration_s", f.duration_ms));
  if (needs_duration && f.duration_ms <= 0) {
    return InvalidArgument(path + ".duration_s: required and > 0 for " + t);
  }
  OUTPOST_RETURN_IF_ERROR(GetNumber(n, path, "fraction", 0, 1, f.fraction));
  double skew_s = 0, spread_s = 0;
  OUTPOST_RETURN_IF_ERROR(GetNumber(n, path, "max_skew_s", 0, 1e7, skew_s));
  OUTPOST_RETURN_IF_ERROR(GetNumber(n, path, "spread_s", 0, 1e6, spread_s));
  f.max_skew_ms = static_cast<std::int64_t>(skew_s * 1000);
  f.spread_ms = static_cast<std::int64_t>(spread_s * 1000);
  if (f.kind == FaultKind::kClockSkew && !n["max_skew_s"]) {
    return InvalidArgument(path + ".max_skew_s: required for clock_skew");
  }
  OUTPOST_RETURN_IF_ERROR(GetNumber(n, path, "rate_per_s", 0, 1e6, f.rate_per_s));
  if (f.kind == FaultKind::kMalformed && !(f.rate_per_s > 0)) {
    return InvalidArgument(path + ".rate_per_s: required and > 0 for malformed");
  }
  OUTPOST_RETURN_IF_ERROR(GetNumber(n, path, "battery_pct", 0, 100, f.battery_pct));
  if (const YAML::Node d = n["devices"]) {
    if (!d.IsSequence()) {
      return InvalidArgument(path + ".devices: expected a list of device ids, got " + Describe(d));
    }
    for (std::size_t i = 0; i < d.size(); ++i) {
      if (!d[i].IsScalar() || d[i].Scalar().empty()) {
        return InvalidArgument(path + ".devices[" + std::to_string(i) +
                               "]: expected a device id, got " + Describe(d[i]));
      }
      f.devices.push_back(d[i].Scalar());
    }
  }
  return Status::Ok();
}

}  // namespace

const char* FaultKindName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kBrokerOutage:
      return "broker_outage";
    case FaultKind::kBlackhole:
      return "blackhole";
    case FaultKind::kClockSkew:
      return "clock_skew";
    case FaultKind::kRebootStorm:
      return "reboot_storm";
    case FaultKind::kMalformed:
      return "malformed";
    case FaultKind::kLowBattery:
      return "low_battery";
  }
  return "?";
}

Result<Scenario> ParseScenario(std::string_view yaml) {
  Scenario s;
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (!root || root.IsNull()) return s;  // an empty file: defaults, no faults
    if (!root.IsMap()) return InvalidArgument("scenario: expected a map at the top level");
    OUTPOST_RETURN_IF_ERROR(CheckKeys(root, "", {"models", "faults"}));
    if (const YAML::Node m = root["models"]) OUTPOST_RETURN_IF_ERROR(ParseModels(m, s.models));
    if (const YAML::Node f = root["faults"]) {
      if (!f.IsSequence()) return InvalidArgument("faults: expected a list, got " + Describe(f));
      for (std::size_t i = 0; i < f.size(); ++i) {
        Fault fault;
        OUTPOST_RETURN_IF_ERROR(ParseFault(f[i], "faults[" + std::to_string(i) + "]", fault));
        s.faults.push_back(std::move(fault));
      }
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string("scenario: not valid YAML: ") + e.what());
  }
  return s;
}

Result<Scenario> LoadScenario(const std::string& path) {
  // Bounded: a FIFO or /dev/zero given as --scenario is an error, not a hang.
  auto text = ReadFile(path, kMaxScenarioBytes);
  if (!text.ok()) return Status(text.status().code(), "scenario file " + text.status().message());
  auto s = ParseScenario(*text);
  if (!s.ok()) return InvalidArgument(path + ": " + s.status().message());
  return s;
}

double FaultDraw(std::size_t fault_index, std::uint64_t seed, std::uint32_t device_index) {
  return Unit(Hash(seed, device_index, 0xfa17ULL, fault_index));
}

bool FaultAffects(const Fault& fault, std::size_t fault_index, std::uint64_t seed,
                  std::uint32_t device_index, std::string_view device_id) {
  if (fault.kind == FaultKind::kBrokerOutage || fault.kind == FaultKind::kMalformed) return true;
  if (!fault.devices.empty()) {
    for (const auto& d : fault.devices) {
      if (d == device_id) return true;
    }
    return false;
  }
  return Unit(Hash(seed, device_index, 0xaffecULL, fault_index)) < fault.fraction;
}

}  // namespace outpost::node::sim
