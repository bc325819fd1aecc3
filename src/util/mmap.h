// Read-only memory mapping of a whole file, or a private copy of it in
// anonymous memory. Move-only; unmaps on destruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pocket {

// Where the bytes live.
//   kMap:        the file mapped (page cache, 4 KiB pages, shared between processes)
//   kCopy:       read into anonymous memory of this process
//   kHugePages:  read into anonymous memory with madvise(MADV_HUGEPAGE) (2 MiB pages
//                where the kernel has them: far fewer TLB misses when a decode step
//                streams all the weights; costs a private copy and the read time)
enum class FileBacking { kMap, kCopy, kHugePages };

// "map", "copy", "hugepages" (false for anything else).
bool file_backing_from_name(const std::string& name, FileBacking& out);
const char* file_backing_name(FileBacking b);

class MappedFile {
 public:
  MappedFile() = default;
  // Throws pocket::Error naming the path and the OS error.
  explicit MappedFile(const std::string& path, FileBacking backing = FileBacking::kMap);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  FileBacking backing() const { return backing_; }

 private:
  void release();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* region_ = nullptr;  // what munmap releases (the copies: aligned inside it)
  size_t region_size_ = 0;
  FileBacking backing_ = FileBacking::kMap;
  std::string path_;
};

}  // namespace pocket
