#include "cli/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "cli/exit_codes.h"

namespace reqcost::cli {

absl::StatusOr<OutputFile> OutputFile::Create(const std::string& path,
                                              bool force) {
  struct stat st;
  if (!force && ::lstat(path.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "%s already exists; remove it, choose another path or pass --force "
        "to replace it",
        path));
  }
  if (force && ::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, absl::StrFormat("remove old %s", path));
  }
  int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
             S_IRUSR | S_IWUSR);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrFormat("create %s", path));
  }
  OutputFile file(path, fd);
  if (::fchmod(fd, S_IRUSR | S_IWUSR) != 0) {
    absl::Status s = absl::ErrnoToStatus(
        errno, absl::StrFormat("set mode 0600 on %s", path));
    return s;  // `file` removes the path
  }
  return file;
}

OutputFile::OutputFile(OutputFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(other.fd_) {
  other.fd_ = -1;
}

OutputFile::~OutputFile() { Discard(); }

void OutputFile::Discard() {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(path_.c_str());
  fd_ = -1;
}

absl::Status OutputFile::Commit(const std::string& text) {
  if (fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s was already written", path_));
  }
  absl::Status status;
  size_t done = 0;
  while (status.ok() && done < text.size()) {
    ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      status = absl::ErrnoToStatus(errno, absl::StrFormat("write %s", path_));
    } else {
      done += static_cast<size_t>(n);
    }
  }
  if (!status.ok()) {
    Discard();
    return status;
  }
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    status = absl::ErrnoToStatus(errno, absl::StrFormat("write %s", path_));
    ::unlink(path_.c_str());
  }
  return status;
}

absl::Status OutputFileError(absl::Status status) {
  const int code = status.code() == absl::StatusCode::kAlreadyExists
                       ? kExitUsage
                       : kExitError;
  return WithExitCode(std::move(status), code);
}

absl::Status OpenOptionalOutput(const std::string& path, bool force,
                                std::optional<OutputFile>* file) {
  if (path.empty()) return absl::OkStatus();
  absl::StatusOr<OutputFile> created = OutputFile::Create(path, force);
  if (!created.ok()) return OutputFileError(created.status());
  file->emplace(*std::move(created));
  return absl::OkStatus();
}

}  // namespace reqcost::cli
