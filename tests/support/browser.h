// A real browser for the tests of the --html page: Debian's
// chromium-headless-shell (or chromium --headless), run on a file with every
// run bounded by a timeout, and a small PNG decoder to look at its
// screenshots.
#ifndef REQCOST_TESTS_SUPPORT_BROWSER_H_
#define REQCOST_TESTS_SUPPORT_BROWSER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "samples/stack/process.h"

namespace reqcost::testing {

struct BrowserOptions {
  int width = 1280;
  int height = 900;
  absl::Duration timeout = absl::Seconds(60);
};

// The headless browser: $REQCOST_BIN_CHROMIUM, else chromium-headless-shell,
// else chromium; NotFound naming the package to install otherwise.
absl::StatusOr<std::string> FindHeadlessBrowser();

// The DOM of `html_path` after its scripts ran (--dump-dom). `dir` holds
// the browser's profile and output files.
absl::StatusOr<std::string> DumpDom(const stack::TempDir& dir,
                                    const std::string& html_path,
                                    const BrowserOptions& options = {});

// Renders `html_path` into the PNG `png_path` (--screenshot).
absl::Status Screenshot(const stack::TempDir& dir, const std::string& html_path,
                        const std::string& png_path,
                        const BrowserOptions& options = {});

// A decoded image, 8-bit RGBA, row by row.
struct Image {
  uint32_t width = 0;
  uint32_t height = 0;
  std::vector<uint8_t> rgba;
};

// Decodes a non-interlaced 8-bit PNG (grey, grey+alpha, RGB, RGBA or
// palette): what Chromium writes. InvalidArgument for anything else.
absl::StatusOr<Image> DecodePng(absl::string_view bytes);

// How many distinct RGB colours the image has.
size_t DistinctColors(const Image& image);

// How many times `needle` occurs in `haystack` (non-overlapping).
size_t Count(absl::string_view haystack, absl::string_view needle);

}  // namespace reqcost::testing

#endif  // REQCOST_TESTS_SUPPORT_BROWSER_H_
