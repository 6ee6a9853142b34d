#include "outpost/gateway/commands/book.h"

#include <algorithm>
#include <array>
#include <utility>

namespace outpost::gateway::commands {

namespace {

constexpr std::array<const char*, 8> kStateNames = {"queued", "sent",     "delivered", "succeeded",
                                                    "failed", "rejected", "expired",   "canceled"};

bool Allowed(State from, State to) {
  switch (from) {
    case State::kQueued:
      return to == State::kSent || to == State::kExpired || to == State::kCanceled;
    case State::kSent:
      return to == State::kDelivered || to == State::kSucceeded || to == State::kFailed ||
             to == State::kRejected || to == State::kExpired;
    case State::kDelivered:
      return to == State::kSucceeded || to == State::kFailed || to == State::kRejected ||
             to == State::kExpired;
    default:
      return false;
  }
}

void Move(Command* c, State to, std::int64_t now_ms, std::string_view user) {
  c->state = to;
  c->updated_ms = now_ms;
  c->history.push_back(Transition{to, now_ms, std::string(user)});
}

}  // namespace

const char* StateName(State s) { return kStateNames[static_cast<std::size_t>(s)]; }

std::optional<State> StateFromName(std::string_view name) {
  for (std::size_t i = 0; i < kStateNames.size(); ++i) {
    if (name == kStateNames[i]) return static_cast<State>(i);
  }
  return std::nullopt;
}

const char* TransportName(Transport t) { return t == Transport::kSeed ? "seed" : "native"; }

bool Finished(const Command& c) {
  switch (c.state) {
    case State::kQueued:
    case State::kDelivered:
      return false;
    case State::kSent:
      return c.transport == Transport::kSeed;
    default:
      return true;
  }
}

Result<Accepted> Book::Accept(const Request& r, std::int64_t now_ms, std::int64_t* retry_after_ms) {
  auto dev = devices_.find(r.device);
  if (!r.idempotency_key.empty() && dev != devices_.end()) {
    if (auto k = dev->second.by_key.find(r.idempotency_key); k != dev->second.by_key.end()) {
      const Command& existing = by_id_.at(k->second);
      if (existing.fingerprint != r.fingerprint) {
        ++counters_.idempotency_conflicts;
        return Status(Code::kAlreadyExists,
                      "Idempotency-Key \"" + r.idempotency_key.substr(0, 64) +
                          "\" was used for command " + existing.id +
                          " with a different body; use a new key for a new command");
      }
      ++counters_.idempotent_replays;
      return Accepted{existing, true, {}};
    }
  }
  std::int64_t ttl = r.ttl_ms.value_or(options_.default_ttl_ms);
  if (ttl < 1000 || ttl > options_.max_ttl_ms) {
    return InvalidArgument("ttl_s: " + std::to_string(ttl / 1000) + " is outside 1.." +
                           std::to_string(options_.max_ttl_ms / 1000) + " (commands.max_ttl_s)");
  }
  Accepted out;
  if (dev != devices_.end()) {
    std::size_t open = 0, finished = 0;
    std::int64_t earliest = INT64_MAX;
    for (const auto& [seq, id] : dev->second.by_seq) {
      const Command& c = by_id_.at(id);
      if (Finished(c)) {
        ++finished;
      } else {
        ++open;
        earliest = std::min(earliest, c.expires_ms);
      }
    }
    if (open >= options_.queue_per_device) {
      ++counters_.queue_full;
      if (retry_after_ms != nullptr) *retry_after_ms = std::max<std::int64_t>(earliest - now_ms, 0);
      return ResourceExhausted(
          "device \"" + r.device + "\" has " + std::to_string(open) + " open commands, at most " +
          std::to_string(options_.queue_per_device) + " (commands.queue_per_device)");
    }
    // Room in the history: the oldest finished commands go.
    std::size_t total = open + finished;
    for (const auto& [seq, id] : dev->second.by_seq) {
      if (total < options_.history_per_device) break;
      if (Finished(by_id_.at(id))) {
        out.evict.push_back(id);
        --total;
      }
    }
  }
  Command& c = out.command;
  c.id = r.id;
  c.device = r.device;
  c.name = r.name;
  c.params_json = r.params_json.empty() ? "{}" : r.params_json;
  c.transport = r.transport;
  c.seq = next_seq_;
  c.created_ms = c.updated_ms = now_ms;
  c.expires_ms = now_ms + ttl;
  c.user = r.user;
  c.idempotency_key = r.idempotency_key;
  c.fingerprint = r.fingerprint;
  c.history.push_back(Transition{State::kQueued, now_ms, r.user});
  ++counters_.accepted;
  return out;
}

Result<Command> Book::Transit(std::string_view id, State to, std::int64_t now_ms,
                              std::string_view user, const Reply* reply) const {
  const Command* found = Find(id);
  if (found == nullptr) return NotFound("no command \"" + std::string(id.substr(0, 64)) + "\"");
  if (Finished(*found) || !Allowed(found->state, to)) {
    return FailedPrecondition("command " + found->id + " is " + StateName(found->state) +
                              (Finished(*found) ? " (finished)" : "") + "; it cannot become " +
                              StateName(to));
  }
  Command c = *found;
  Move(&c, to, now_ms, user);
  if (reply != nullptr) c.reply_json = reply->json;
  c.resend = false;
  return c;
}

Result<Command> Book::ApplyReply(std::string_view id, const Reply& reply,
                                 std::int64_t now_ms) const {
  const Command* found = Find(id);
  if (found == nullptr) return NotFound("no command \"" + std::string(id.substr(0, 64)) + "\"");
  if (Finished(*found) || found->state == State::kQueued) {
    // A queued command has not gone out (a reply for it is someone else's); a finished one has
    // its outcome.
    return FailedPrecondition("command " + found->id + " is " + StateName(found->state));
  }
  Command c = *found;
  if (c.state == State::kSent) Move(&c, State::kDelivered, now_ms, "device");
  if (reply.has_ok) {
    Move(&c,
         reply.ok         ? State::kSucceeded
         : reply.rejected ? State::kRejected
                          : State::kFailed,
         now_ms, "device");
  }
  c.reply_json = reply.json;
  c.resend = false;
  return c;
}

std::vector<Command> Book::PlanDispatch(std::string_view device, std::int64_t now_ms) const {
  std::vector<Command> out;
  auto dev = devices_.find(std::string(device));
  if (dev == devices_.end()) return out;
  for (const auto& [seq, id] : dev->second.by_seq) {
    const Command& c = by_id_.at(id);
    if (c.expires_ms <= now_ms) continue;  // the expiry timer takes it
    if (c.state == State::kQueued) {
      Command next = c;
      Move(&next, State::kSent, now_ms, "gateway");
      out.push_back(std::move(next));
    } else if (c.resend && !Finished(c)) {
      out.push_back(c);
    }
  }
  return out;
}

std::vector<Command> Book::PlanExpiry(std::int64_t now_ms) const {
  std::vector<Command> out;
  for (const auto& [expires, id] : open_by_expiry_) {
    if (expires > now_ms) break;
    Command next = by_id_.at(id);
    Move(&next, State::kExpired, now_ms, "gateway");
    next.resend = false;
    out.push_back(std::move(next));
  }
  return out;
}

std::optional<std::int64_t> Book::NextExpiry() const {
  if (open_by_expiry_.empty()) return std::nullopt;
  return open_by_expiry_.begin()->first;
}

void Book::Index(const Command* before, const Command* after) {
  if (before != nullptr && !Finished(*before))
    open_by_expiry_.erase({before->expires_ms, before->id});
  if (after != nullptr && !Finished(*after)) open_by_expiry_.insert({after->expires_ms, after->id});
}

void Book::Recheck(const std::string& device) {
  auto dev = devices_.find(device);
  bool work = false;
  if (dev != devices_.end()) {
    for (const auto& [seq, id] : dev->second.by_seq) {
      const Command& c = by_id_.at(id);
      if (c.state == State::kQueued || (c.resend && !Finished(c))) {
        work = true;
        break;
      }
    }
  }
  if (work) {
    waiting_.insert(device);
  } else {
    waiting_.erase(device);
  }
}

void Book::Put(Command c) {
  next_seq_ = std::max(next_seq_, c.seq + 1);
  const std::string device = c.device;
  DeviceBook& d = devices_[device];
  auto it = by_id_.find(c.id);
  if (it == by_id_.end()) {
    d.by_seq[c.seq] = c.id;
    if (!c.idempotency_key.empty()) d.by_key[c.idempotency_key] = c.id;
    Index(nullptr, &c);
    by_id_.emplace(c.id, std::move(c));
  } else {
    Index(&it->second, &c);
    it->second = std::move(c);
  }
  Recheck(device);
}

void Book::Forget(std::string_view id) {
  auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) return;
  Index(&it->second, nullptr);
  const std::string device = it->second.device;
  auto dev = devices_.find(it->second.device);
  if (dev != devices_.end()) {
    dev->second.by_seq.erase(it->second.seq);
    if (!it->second.idempotency_key.empty()) dev->second.by_key.erase(it->second.idempotency_key);
    if (dev->second.by_seq.empty()) devices_.erase(dev);
  }
  by_id_.erase(it);
  ++counters_.evicted;
  Recheck(device);
}

void Book::Restore(std::vector<Command> stored) {
  for (Command& c : stored) {
    c.resend = c.state == State::kSent && c.transport == Transport::kNative;
    if (c.state == State::kDelivered) c.resend = false;  // the device has it
    Put(std::move(c));
  }
}

const Command* Book::Find(std::string_view id) const {
  auto it = by_id_.find(std::string(id));
  return it == by_id_.end() ? nullptr : &it->second;
}

std::vector<const Command*> Book::List(std::string_view device, std::uint64_t before_seq,
                                       std::size_t limit) const {
  std::vector<const Command*> out;
  auto dev = devices_.find(std::string(device));
  if (dev == devices_.end()) return out;
  const auto& seqs = dev->second.by_seq;
  auto it = before_seq == 0 ? seqs.end() : seqs.lower_bound(before_seq);
  while (it != seqs.begin() && out.size() < limit) {
    --it;
    out.push_back(&by_id_.at(it->second));
  }
  return out;
}

std::size_t Book::open(std::string_view device) const {
  auto dev = devices_.find(std::string(device));
  if (dev == devices_.end()) return 0;
  std::size_t n = 0;
  for (const auto& [seq, id] : dev->second.by_seq) n += Finished(by_id_.at(id)) ? 0 : 1;
  return n;
}

}  // namespace outpost::gateway::commands
