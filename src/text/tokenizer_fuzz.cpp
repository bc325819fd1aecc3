// libFuzzer target for the tokenizer, with the tiny golden models' 2007-token
// vocabulary loaded once. For any input bytes:
//  - lenient encode never fails, yields ids in range, and decodes back to the
//    input with ill-formed UTF-8 replaced (NFC-equal to it when normalizing);
//  - strict encode fails exactly when the input is ill-formed UTF-8;
//  - the streaming decoder emits only well-formed UTF-8 and, in total, the
//    batch decode with ill-formed sequences replaced, for the encoded ids and
//    for arbitrary ids made from the input.
// The first input byte selects the options; the rest is the text.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "text/tokenizer.h"
#include "text/unicode.h"
#include "text/utf8.h"
#include "util/error.h"

namespace {

using pocket::text::DecodeOptions;
using pocket::text::EncodeOptions;
using pocket::text::LoadOptions;
using pocket::text::PreTokenizer;
using pocket::text::StreamingDecoder;
using pocket::text::Tokenizer;

const Tokenizer& vocab(bool qwen2) {
  static const auto load = [](PreTokenizer pre) {
    const std::string path =
        std::string(POCKET_SHARED_DIR) + "/golden/tiny-qwen35-dense-tied-f32.gguf";
    try {
      return std::make_unique<Tokenizer>(Tokenizer::load(path, LoadOptions{pre}));
    } catch (const pocket::Error& e) {
      std::fprintf(stderr, "tokenizer_fuzz: cannot load the vocabulary: %s\n", e.what());
      std::abort();
    }
  };
  static const auto q2 = load(PreTokenizer::kQwen2);
  static const auto q35 = load(PreTokenizer::kQwen35);
  return qwen2 ? *q2 : *q35;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "tokenizer_fuzz: %s\n", what);
    std::abort();
  }
}

// Streams ids through a decoder, checks every piece, returns the total.
std::string stream(const Tokenizer& tok, const std::vector<int32_t>& ids, DecodeOptions options) {
  StreamingDecoder decoder(tok, options);
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = decoder.push(id);
    check(!pocket::text::find_invalid_utf8(piece), "streaming decoder emitted ill-formed UTF-8");
    out += piece;
  }
  const std::string tail = decoder.finish();
  check(!pocket::text::find_invalid_utf8(tail), "streaming decoder emitted ill-formed UTF-8");
  check(decoder.pending_bytes() == 0, "finish() left bytes pending");
  return out + tail;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const Tokenizer& tok = vocab(flags & 1);
  EncodeOptions options;
  options.parse_special = flags & 2;
  options.normalize = flags & 4;
  DecodeOptions decode_options;
  decode_options.render_special = !(flags & 8);

  const bool well_formed = !pocket::text::find_invalid_utf8(text);
  const std::string repaired = pocket::text::replace_invalid_utf8(text);

  // Strict mode: throws exactly on ill-formed input.
  bool threw = false;
  try {
    EncodeOptions strict = options;
    strict.lenient_utf8 = false;
    (void)tok.encode(text, strict);
  } catch (const pocket::Error&) {
    threw = true;
  }
  check(threw != well_formed, "strict encode disagrees with the UTF-8 check");

  options.lenient_utf8 = true;
  const std::vector<int32_t> ids = tok.encode(text, options);
  for (int32_t id : ids) check(id >= 0 && size_t(id) < tok.n_vocab(), "id out of range");

  // Round trip (specials rendered, so every byte comes back).
  const std::string decoded = tok.decode(ids);
  if (options.normalize) {
    // Added tokens are matched before normalization, so compare up to NFC.
    check(pocket::text::to_nfc(decoded) == pocket::text::to_nfc(repaired), "round trip (NFC)");
  } else {
    check(decoded == repaired, "round trip");
  }
  check(stream(tok, ids, {}) == decoded, "streaming decode of the encoded ids");

  // Arbitrary ids from the input bytes: streaming equals repaired batch decode.
  std::vector<int32_t> random_ids;
  for (size_t i = 0; i + 1 < text.size(); i += 2) {
    const auto v = static_cast<uint16_t>(uint8_t(text[i]) | uint8_t(text[i + 1]) << 8);
    random_ids.push_back(int32_t(v % tok.n_vocab()));
  }
  check(stream(tok, random_ids, decode_options) ==
            pocket::text::replace_invalid_utf8(tok.decode(random_ids, decode_options)),
        "streaming decode of arbitrary ids");
  return 0;
}
