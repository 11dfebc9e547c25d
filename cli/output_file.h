// A file a command writes as its output (the timeline's trace, the --html
// page). It is created before the command does its work, so that a path
// that cannot be written fails at once, and removed again unless Commit()
// wrote it: a failed run leaves no half-written file behind.
#ifndef REQCOST_CLI_OUTPUT_FILE_H_
#define REQCOST_CLI_OUTPUT_FILE_H_

#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace reqcost::cli {

class OutputFile {
 public:
  // Creates `path` with mode 0600 whatever the umask, never through a
  // symlink. An existing path is replaced only with `force`, else
  // AlreadyExists with a sentence that says what to do; other failures
  // carry the errno ("create PATH: Permission denied").
  static absl::StatusOr<OutputFile> Create(const std::string& path, bool force);

  OutputFile(OutputFile&& other) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  ~OutputFile();

  // Writes `text` and closes the file; on failure the file is removed.
  absl::Status Commit(const std::string& text);

  const std::string& path() const { return path_; }

 private:
  OutputFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  void Discard();

  std::string path_;
  int fd_ = -1;
};

// An OutputFile failure, marked with its exit code: 2 for an existing path
// without --force, 1 for anything else.
absl::Status OutputFileError(absl::Status status);

// Creates `path` (OutputFile::Create) to be written at the end, so that an
// unwritable path fails before any work; nullopt when `path` is empty (no
// such output asked for). Errors are OutputFileError's.
absl::Status OpenOptionalOutput(const std::string& path, bool force,
                                std::optional<OutputFile>* file);

}  // namespace reqcost::cli

#endif  // REQCOST_CLI_OUTPUT_FILE_H_
