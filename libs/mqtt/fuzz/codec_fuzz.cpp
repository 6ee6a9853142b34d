// libFuzzer target for the MQTT decoder and the client session: arbitrary broker bytes must
// never crash, hang or grow memory without bound; decoded packets must re-encode to packets
// that decode to the same value; an oversize PUBLISH is skipped with only its head kept.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "outpost/base/check.h"
#include "outpost/mqtt/codec.h"
#include "outpost/mqtt/session.h"

using namespace outpost::mqtt;  // NOLINT: test-only brevity

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  // 1. Decoder, fed in uneven chunks; round-trip every packet it accepts.
  Decoder decoder(4096);
  std::size_t chunk = size == 0 ? 1 : (data[0] % 7) + 1;
  for (std::size_t pos = 0; pos < size; pos += chunk) {
    decoder.Feed(input.substr(pos, chunk));
    while (true) {
      auto next = decoder.Next();
      if (!next.ok() || !next->has_value()) break;
      if (auto* big = std::get_if<OversizePublish>(&**next)) {
        // Skipped, not encodable: over the limit, and only its head was kept.
        OUTPOST_CHECK(big->packet_bytes > 4096);
        OUTPOST_CHECK(big->head.size() <= kDefaultOversizeHeadBytes);
        OUTPOST_CHECK(big->head.size() <= big->payload_bytes);
        OUTPOST_CHECK(ValidateTopicName(big->topic).ok());
        continue;
      }
      std::string encoded;
      Encode(**next, encoded);
      Decoder again(4096 + 16);
      again.Feed(encoded);
      auto back = again.Next();
      OUTPOST_CHECK(back.ok() && back->has_value());
      OUTPOST_CHECK(**back == **next);
      OUTPOST_CHECK(again.buffered() == 0);
    }
    if (!decoder.Next().ok()) break;
    // Bounded memory: one packet within the limit, or the head of an oversize one, plus a chunk.
    OUTPOST_CHECK(decoder.buffered() <= 4096 + 2 + 65535 + 2 + kDefaultOversizeHeadBytes + 8);
  }

  // 2. The session, as if a broker sent these bytes after CONNECT.
  SessionOptions options;
  options.client_id = "fuzz";
  options.max_packet_size = 4096;
  Session session(options);
  session.Start(0);
  (void)session.Publish("t/out", "x", 1, false);
  (void)session.TakeOutbound();
  outpost::Status s = session.OnBytes(input, 1);
  while (auto e = session.PollEvent()) {
    if (auto* m = std::get_if<Message>(&*e)) session.Ack(m->packet_id);
    if (auto* m = std::get_if<OversizeMessage>(&*e)) session.Ack(m->packet_id);
  }
  (void)s;
  (void)session.OnTick(100'000);
  (void)session.TakeOutbound();
  session.OnConnectionLost();
  return 0;
}
