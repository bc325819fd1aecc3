#include "util/mmap.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/huge_page_allocator.h"

namespace pocket {

bool file_backing_from_name(const std::string& name, FileBacking& out) {
  if (name == "map")
    out = FileBacking::kMap;
  else if (name == "copy")
    out = FileBacking::kCopy;
  else if (name == "hugepages")
    out = FileBacking::kHugePages;
  else
    return false;
  return true;
}

const char* file_backing_name(FileBacking b) {
  switch (b) {
    case FileBacking::kCopy:
      return "copy";
    case FileBacking::kHugePages:
      return "hugepages";
    default:
      return "map";
  }
}

namespace {

// Reads the whole file into dst (size bytes); throws with the path on error.
void read_all(int fd, uint8_t* dst, size_t size, const std::string& path) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, dst + done, size - done, off_t(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(path, ": cannot read: ", std::strerror(errno));
    if (n == 0) fail(path, ": file shrank while reading (", done, " of ", size, " bytes)");
    done += size_t(n);
  }
}

}  // namespace

MappedFile::MappedFile(const std::string& path, FileBacking backing)
    : backing_(backing), path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open: ", std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail(path, ": cannot stat: ", std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, ": not a regular file");
  }
  size_ = size_t(st.st_size);
  if (size_ > 0 && backing == FileBacking::kMap) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail(path, ": cannot map: ", std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(p);
    region_ = p;
    region_size_ = size_;
  } else if (size_ > 0) {
    // Huge pages need 2 MiB aligned addresses: over-allocate and align.
    const bool huge = backing == FileBacking::kHugePages;
    region_size_ =
        huge ? (size_ + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes + kHugePageBytes
             : size_;
    void* p =
        ::mmap(nullptr, region_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail(path, ": cannot allocate ", size_, " bytes for a copy: ", std::strerror(e));
    }
    region_ = p;
    auto addr = reinterpret_cast<uintptr_t>(p);
    if (huge) {
      addr = (addr + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
      // Advice only: without huge pages the copy still works (4 KiB pages).
      ::madvise(reinterpret_cast<void*>(addr), region_size_ - kHugePageBytes, MADV_HUGEPAGE);
    }
    auto* dst = reinterpret_cast<uint8_t*>(addr);
    try {
      read_all(fd, dst, size_, path);
    } catch (...) {
      ::close(fd);
      release();
      throw;
    }
    ::mprotect(region_, region_size_, PROT_READ);  // the weights are never written
    data_ = dst;
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  release();
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : data_(o.data_),
      size_(o.size_),
      region_(o.region_),
      region_size_(o.region_size_),
      backing_(o.backing_),
      path_(std::move(o.path_)) {
  o.data_ = nullptr;
  o.size_ = 0;
  o.region_ = nullptr;
  o.region_size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    release();
    data_ = o.data_;
    size_ = o.size_;
    region_ = o.region_;
    region_size_ = o.region_size_;
    backing_ = o.backing_;
    path_ = std::move(o.path_);
    o.data_ = nullptr;
    o.size_ = 0;
    o.region_ = nullptr;
    o.region_size_ = 0;
  }
  return *this;
}

void MappedFile::release() {
  if (region_) ::munmap(region_, region_size_);
  region_ = nullptr;
  region_size_ = 0;
  data_ = nullptr;
  size_ = 0;
}

}  // namespace pocket
