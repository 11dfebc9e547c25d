#include "tests/support/browser.h"

#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace reqcost::testing {
namespace {

using stack::Subprocess;
using stack::TempDir;

// Runs the browser on `html_path` with `extra` flags; returns the path of
// its stdout. Bounded by options.timeout; a browser still running then is
// stopped.
absl::StatusOr<std::string> RunBrowser(const TempDir& dir,
                                       const std::string& html_path,
                                       const std::vector<std::string>& extra,
                                       const BrowserOptions& options) {
  static int n = 0;
  absl::StatusOr<std::string> browser = FindHeadlessBrowser();
  if (!browser.ok()) return browser.status();
  const std::string tag = absl::StrCat("browser-", n++);
  std::vector<std::string> argv = {
      *browser,
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-extensions",
      "--disable-background-networking",
      "--disable-dev-shm-usage",
      "--hide-scrollbars",
      absl::StrCat("--user-data-dir=", dir.File(tag + "-profile")),
      absl::StrFormat("--window-size=%d,%d", options.width, options.height),
  };
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(absl::StrCat("file://", html_path));
  const std::string out = dir.File(tag + ".out");
  const std::string err = dir.File(tag + ".err");
  absl::StatusOr<Subprocess> p = Subprocess::Start(argv, out, err);
  if (!p.ok()) return p.status();
  absl::StatusOr<int> status = p->WaitForExit(options.timeout);
  if (!status.ok()) {
    (void)p->Stop(absl::Seconds(5));
    return absl::DeadlineExceededError(absl::StrCat(
        "the browser did not finish within ",
        absl::FormatDuration(options.timeout), ": ", stack::FileTail(err)));
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(absl::StrCat("the browser ",
                                            stack::DescribeWaitStatus(*status),
                                            ": ", stack::FileTail(err)));
  }
  return out;
}

uint32_t BigEndian32(absl::string_view b, size_t at) {
  auto u = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<uint8_t>(b[at + i]));
  };
  return u(0) << 24 | u(1) << 16 | u(2) << 8 | u(3);
}

int Paeth(int a, int b, int c) {
  int p = a + b - c;
  int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

}  // namespace

absl::StatusOr<std::string> FindHeadlessBrowser() {
  if (const char* v = std::getenv("REQCOST_BIN_CHROMIUM");
      v != nullptr && *v != '\0') {
    if (access(v, X_OK) == 0) return std::string(v);
    return absl::NotFoundError(
        absl::StrCat("REQCOST_BIN_CHROMIUM=", v, " is not an executable"));
  }
  for (const char* path :
       {"/usr/bin/chromium-headless-shell", "/usr/bin/chromium"}) {
    if (access(path, X_OK) == 0) return std::string(path);
  }
  return absl::NotFoundError(
      "no headless browser: install chromium-headless-shell "
      "(scripts/bootstrap.sh does)");
}

absl::StatusOr<std::string> DumpDom(const TempDir& dir,
                                    const std::string& html_path,
                                    const BrowserOptions& options) {
  absl::StatusOr<std::string> out =
      RunBrowser(dir, html_path, {"--dump-dom"}, options);
  if (!out.ok()) return out.status();
  return stack::ReadFileToString(*out);
}

absl::Status Screenshot(const TempDir& dir, const std::string& html_path,
                        const std::string& png_path,
                        const BrowserOptions& options) {
  absl::StatusOr<std::string> out =
      RunBrowser(dir, html_path,
                 {absl::StrCat("--screenshot=", png_path),
                  "--run-all-compositor-stages-before-draw"},
                 options);
  if (!out.ok()) return out.status();
  if (access(png_path.c_str(), R_OK) != 0) {
    return absl::InternalError(absl::StrCat("the browser wrote no ", png_path));
  }
  return absl::OkStatus();
}

absl::StatusOr<Image> DecodePng(absl::string_view b) {
  static constexpr absl::string_view kMagic("\x89PNG\r\n\x1a\n", 8);
  if (b.size() < 8 || b.substr(0, 8) != kMagic) {
    return absl::InvalidArgumentError("not a PNG (bad signature)");
  }
  Image image;
  int depth = 0, colour = -1, interlace = 0;
  std::string idat, palette;
  for (size_t at = 8; at + 12 <= b.size();) {
    const uint32_t length = BigEndian32(b, at);
    if (length > b.size() - at - 12) {
      return absl::InvalidArgumentError(
          absl::StrCat("PNG chunk at ", at, " runs past the end"));
    }
    absl::string_view type = b.substr(at + 4, 4);
    absl::string_view data = b.substr(at + 8, length);
    if (type == "IHDR" && length >= 13) {
      image.width = BigEndian32(data, 0);
      image.height = BigEndian32(data, 4);
      depth = static_cast<uint8_t>(data[8]);
      colour = static_cast<uint8_t>(data[9]);
      interlace = static_cast<uint8_t>(data[12]);
    } else if (type == "PLTE") {
      palette = std::string(data);
    } else if (type == "IDAT") {
      idat.append(data.data(), data.size());
    } else if (type == "IEND") {
      break;
    }
    at += 12 + length;
  }
  int channels = colour == 0   ? 1
                 : colour == 2 ? 3
                 : colour == 3 ? 1
                 : colour == 4 ? 2
                 : colour == 6 ? 4
                               : 0;
  if (channels == 0 || depth != 8 || interlace != 0 || image.width == 0 ||
      image.height == 0 || image.width > 20000 || image.height > 50000) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "unsupported PNG: %dx%d, depth %d, colour type %d, interlace %d",
        image.width, image.height, depth, colour, interlace));
  }
  const size_t stride = static_cast<size_t>(image.width) * channels;
  std::vector<uint8_t> raw((stride + 1) * image.height);
  uLongf raw_size = raw.size();
  if (uncompress(raw.data(), &raw_size,
                 reinterpret_cast<const Bytef*>(idat.data()),
                 idat.size()) != Z_OK ||
      raw_size != raw.size()) {
    return absl::InvalidArgumentError(
        "PNG image data does not inflate to its size");
  }
  std::vector<uint8_t> pixels(stride * image.height);
  for (uint32_t y = 0; y < image.height; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* in = &raw[y * (stride + 1) + 1];
    uint8_t* row = &pixels[y * stride];
    const uint8_t* up = y > 0 ? &pixels[(y - 1) * stride] : nullptr;
    for (size_t i = 0; i < stride; ++i) {
      int a = i >= static_cast<size_t>(channels) ? row[i - channels] : 0;
      int u = up != nullptr ? up[i] : 0;
      int c = up != nullptr && i >= static_cast<size_t>(channels)
                  ? up[i - channels]
                  : 0;
      int pred = 0;
      switch (filter) {
        case 0:
          pred = 0;
          break;
        case 1:
          pred = a;
          break;
        case 2:
          pred = u;
          break;
        case 3:
          pred = (a + u) / 2;
          break;
        case 4:
          pred = Paeth(a, u, c);
          break;
        default:
          return absl::InvalidArgumentError(
              absl::StrCat("PNG row ", y, ": filter ", filter));
      }
      row[i] = static_cast<uint8_t>(in[i] + pred);
    }
  }
  image.rgba.resize(static_cast<size_t>(image.width) * image.height * 4);
  for (size_t p = 0; p < static_cast<size_t>(image.width) * image.height; ++p) {
    const uint8_t* px = &pixels[p * channels];
    uint8_t* out = &image.rgba[p * 4];
    switch (colour) {
      case 0:
        out[0] = out[1] = out[2] = px[0];
        out[3] = 255;
        break;
      case 4:
        out[0] = out[1] = out[2] = px[0];
        out[3] = px[1];
        break;
      case 2:
        out[0] = px[0];
        out[1] = px[1];
        out[2] = px[2];
        out[3] = 255;
        break;
      case 6:
        for (int k = 0; k < 4; ++k) out[k] = px[k];
        break;
      case 3: {
        const size_t i = static_cast<size_t>(px[0]) * 3;
        if (i + 3 > palette.size()) {
          return absl::InvalidArgumentError("PNG palette index out of range");
        }
        for (int k = 0; k < 3; ++k)
          out[k] = static_cast<uint8_t>(palette[i + k]);
        out[3] = 255;
        break;
      }
    }
  }
  return image;
}

size_t DistinctColors(const Image& image) {
  std::set<uint32_t> colours;
  for (size_t i = 0; i + 3 < image.rgba.size(); i += 4) {
    colours.insert(static_cast<uint32_t>(image.rgba[i]) << 16 |
                   static_cast<uint32_t>(image.rgba[i + 1]) << 8 |
                   image.rgba[i + 2]);
  }
  return colours.size();
}

size_t Count(absl::string_view haystack, absl::string_view needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != absl::string_view::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

}  // namespace reqcost::testing
