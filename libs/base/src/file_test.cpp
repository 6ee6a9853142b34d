#include "outpost/base/file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "outpost/testing/temp_dir.h"

namespace outpost {
namespace {

using outpost::testing::TempDir;

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

TEST(ReadFileTest, AFileUpToTheLimitIsReadWhole) {
  TempDir tmp("outpost-file");
  const std::string path = tmp.File("a.pem");
  Write(path, "0123456789");
  auto text = ReadFile(path, 10);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(*text, "0123456789");
  auto empty_path = tmp.File("empty");
  Write(empty_path, "");
  auto empty = ReadFile(empty_path, 10);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(*empty, "");
}

TEST(ReadFileTest, OneByteOverTheLimitIsRefusedWithTheSizes) {
  TempDir tmp("outpost-file");
  const std::string path = tmp.File("big");
  Write(path, "01234567890");
  auto text = ReadFile(path, 10);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), Code::kInvalidArgument);
  EXPECT_NE(text.status().message().find("11 bytes, more than the 10 read here"), std::string::npos)
      << text.status().ToString();
}

// Each of these would block open() or read() forever, or allocate without bound, with a plain
// read of the path: each is an error at once.
TEST(ReadFileTest, AFifoADeviceAndADirectoryAreNotRegularFiles) {
  TempDir tmp("outpost-file");
  const std::string fifo = tmp.File("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  for (const std::string& path : {fifo, std::string("/dev/zero"), tmp.path()}) {
    auto text = ReadFile(path);
    ASSERT_FALSE(text.ok()) << path;
    EXPECT_EQ(text.status().code(), Code::kInvalidArgument) << path;
    EXPECT_NE(text.status().message().find(path + ": not a regular file"), std::string::npos)
        << text.status().ToString();
  }
}

TEST(ReadFileTest, AMissingFileIsNotFoundAndNamesThePath) {
  TempDir tmp("outpost-file");
  auto text = ReadFile(tmp.File("missing.pem"));
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), Code::kNotFound);
  EXPECT_NE(text.status().message().find("missing.pem: No such file"), std::string::npos)
      << text.status().ToString();
}

}  // namespace
}  // namespace outpost
