#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "outpost/testing/child_process.h"
#include "outpost/testing/cloud_process.h"
#include "outpost/testing/mosquitto_process.h"
#include "outpost/testing/postgres_process.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/test_mqtt.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

TEST(TempDir, CreatesAndRemoves) {
  std::string path;
  {
    TempDir dir("support-test");
    path = dir.path();
    EXPECT_TRUE(std::filesystem::is_directory(path));
    std::ofstream(dir.File("a.txt")) << "x";
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(StatusMatchers, PassOnOkAndPrintTheStatusOtherwise) {
  OUTPOST_EXPECT_OK(Status::Ok());
  OUTPOST_EXPECT_OK(Result<int>(3));
  OUTPOST_ASSERT_OK_AND_ASSIGN(int v, Result<int>(7));
  EXPECT_EQ(v, 7);
  OUTPOST_EXPECT_CODE(NotFound("x"), Code::kNotFound);
  EXPECT_NONFATAL_FAILURE(OUTPOST_EXPECT_OK(Unavailable("broker down")),
                          "is not OK: kUnavailable: broker down");
  EXPECT_NONFATAL_FAILURE(OUTPOST_EXPECT_CODE(Status::Ok(), Code::kNotFound), "expected kNotFound");
  EXPECT_FATAL_FAILURE(OUTPOST_ASSERT_OK(Result<int>(DataLoss("bad fsync"))),
                       "is not OK: kDataLoss: bad fsync");
}

TEST(WaitUntil, ReturnsOnceTheConditionHoldsAndNamesWhatTimedOut) {
  int calls = 0;
  EXPECT_TRUE(WaitUntil("third call", std::chrono::seconds(10), [&] { return ++calls == 3; }));
  EXPECT_EQ(calls, 3);
  auto r = WaitUntil("never", std::chrono::milliseconds(20), [] { return false; });
  ASSERT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("waiting for: never"), std::string::npos) << r.message();
}

TEST(ChildProcess, ExitStatusEnvAndLog) {
  TempDir dir;
  ChildProcessOptions o;
  o.argv = {"/bin/sh", "-c", "echo out=$OUTPOST_X; echo err >&2; exit 3"};
  o.env = {{"OUTPOST_X", "42"}};
  o.log_path = dir.File("child.log");
  auto child = ChildProcess::Start(o);
  OUTPOST_ASSERT_OK(child);
  auto rc = (*child)->Wait(std::chrono::seconds(10));
  OUTPOST_ASSERT_OK(rc);
  EXPECT_EQ(*rc, 3);
  EXPECT_NE((*child)->log().find("out=42"), std::string::npos);
  EXPECT_NE((*child)->log().find("err"), std::string::npos);
}

TEST(ChildProcess, TerminateKillAndTimeout) {
  TempDir dir;
  ChildProcessOptions o;
  o.argv = {"sleep", "30"};
  o.log_path = dir.File("sleep.log");
  auto child = ChildProcess::Start(o);
  OUTPOST_ASSERT_OK(child);
  EXPECT_TRUE((*child)->Running());
  auto early = (*child)->Wait(std::chrono::milliseconds(20));
  OUTPOST_EXPECT_CODE(early, Code::kDeadlineExceeded);
  (*child)->Terminate();
  auto rc = (*child)->Wait(std::chrono::seconds(10));
  OUTPOST_ASSERT_OK(rc);
  EXPECT_EQ(*rc, 128 + SIGTERM);
  EXPECT_FALSE((*child)->Running());

  o.log_path = dir.File("sleep2.log");
  auto second = ChildProcess::Start(o);
  OUTPOST_ASSERT_OK(second);
  (*second)->Kill();
  auto rc2 = (*second)->Wait(std::chrono::seconds(10));
  OUTPOST_ASSERT_OK(rc2);
  EXPECT_EQ(*rc2, 128 + SIGKILL);
}

TEST(ChildProcess, ExecFailureIs127) {
  TempDir dir;
  ChildProcessOptions o;
  o.argv = {"/nonexistent/program"};
  o.log_path = dir.File("x.log");
  auto child = ChildProcess::Start(o);
  OUTPOST_ASSERT_OK(child);
  auto rc = (*child)->Wait(std::chrono::seconds(10));
  OUTPOST_ASSERT_OK(rc);
  EXPECT_EQ(*rc, 127);
  EXPECT_NE((*child)->log().find("exec failed"), std::string::npos);
}

TEST(MosquittoProcess, StartsStopsAndRestartsOnSamePort) {
  MosquittoOptions o;
  o.extra_config = {"max_queued_messages 100"};
  auto broker = MosquittoProcess::Start(o);
  OUTPOST_ASSERT_OK(broker);
  const std::uint16_t port = (*broker)->port();
  OUTPOST_EXPECT_OK(WaitForPort(port, std::chrono::milliseconds(0)));
  {
    std::ifstream conf((*broker)->config_path());
    std::string text((std::istreambuf_iterator<char>(conf)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("max_queued_messages 100"), std::string::npos);
  }
  OUTPOST_ASSERT_OK((*broker)->Stop());
  EXPECT_FALSE((*broker)->running());
  EXPECT_FALSE(WaitForPort(port, std::chrono::milliseconds(0)).ok());
  OUTPOST_ASSERT_OK((*broker)->Restart());
  EXPECT_EQ((*broker)->port(), port);
  TestMqtt c;
  OUTPOST_EXPECT_OK(c.Connect(port));
  (*broker)->Kill();
  EXPECT_FALSE((*broker)->running());
  EXPECT_NE((*broker)->log().find("mosquitto version"), std::string::npos);
}

TEST(MosquittoProcess, BadConfigIsAClearError) {
  MosquittoOptions o;
  o.extra_config = {"no_such_option 1"};
  o.start_timeout = std::chrono::seconds(5);
  auto broker = MosquittoProcess::Start(o);
  ASSERT_FALSE(broker.ok());
  EXPECT_NE(broker.status().message().find("mosquitto exited"), std::string::npos)
      << broker.status().ToString();
}

TEST(TestMqtt, ConnectToNothingFails) {
  auto port = PickFreePort();
  OUTPOST_ASSERT_OK(port);
  TestMqtt c;
  TestMqttOptions o;
  o.reconnect = false;
  Status s = c.Connect(*port, o);
  OUTPOST_EXPECT_CODE(s, Code::kUnavailable) << s.ToString();
}

TEST(CloudProcess, ServesRestartsOnTheSamePortAndStopsCleanly) {
  TempDir dir;
  const std::string database = "sqlite:" + dir.File("cloud.db");
  OUTPOST_ASSERT_OK_AND_ASSIGN(std::string token, CreateCloudToken(database, "gw1", dir.path()));
  EXPECT_EQ(token.rfind("opt_", 0), 0u) << token;
  EXPECT_EQ(token.size(), 68u) << token;
  CloudOptions o;
  o.database = database;
  o.log_dir = dir.path();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto cloud, CloudProcess::Start(o));
  const std::uint16_t port = cloud->port();
  ASSERT_NE(port, 0);
  OUTPOST_EXPECT_OK(WaitForPort(port, std::chrono::milliseconds(0)));
  OUTPOST_ASSERT_OK(cloud->Stop());
  EXPECT_FALSE(cloud->Running());
  EXPECT_FALSE(WaitForPort(port, std::chrono::milliseconds(0)).ok());
  OUTPOST_ASSERT_OK(cloud->Restart());
  EXPECT_EQ(cloud->port(), port);
  EXPECT_NE(cloud->log().find("listening on " + cloud->url()), std::string::npos) << cloud->log();
  OUTPOST_EXPECT_OK(cloud->Stop());
}

TEST(CloudProcess, ExitBeforeListeningIsAClearError) {
  TempDir dir;
  CloudOptions o;
  o.database = "mysql://nope";
  o.log_dir = dir.path();
  auto cloud = CloudProcess::Start(o);
  OUTPOST_ASSERT_CODE(cloud, Code::kUnavailable);
  EXPECT_NE(cloud.status().message().find("exited before listening"), std::string::npos)
      << cloud.status().ToString();
  OUTPOST_EXPECT_CODE(CloudProcess::Start(CloudOptions{}), Code::kInvalidArgument);
}

TEST(CloudProcess, CliGivesExitCodeAndOutput) {
  TempDir dir;
  OUTPOST_ASSERT_OK_AND_ASSIGN(CloudCliRun help, RunCloudCli({"--help"}, dir.path()));
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_NE(help.output.find("serve"), std::string::npos) << help.output;
  OUTPOST_ASSERT_OK_AND_ASSIGN(CloudCliRun bad,
                               RunCloudCli({"migrate", "--database", "mysql://nope"}, dir.path()));
  EXPECT_NE(bad.exit_code, 0) << bad.output;
  OUTPOST_EXPECT_CODE(CreateCloudToken("mysql://nope", "gw1", dir.path()), Code::kInternal);
  // A binary that cannot run is not an error of the call: exec failure is exit status 127.
  OUTPOST_ASSERT_OK_AND_ASSIGN(CloudCliRun missing,
                               RunCloudCli({"--help"}, dir.path(), dir.File("no-such-binary")));
  EXPECT_EQ(missing.exit_code, 127);
}

TEST(SharedPostgres, OneServerAndAFreshDatabasePerCall) {
  OUTPOST_ASSERT_OK_AND_ASSIGN(PostgresProcess * a, SharedPostgres());
  OUTPOST_ASSERT_OK_AND_ASSIGN(PostgresProcess * b, SharedPostgres());
  EXPECT_EQ(a, b);
  OUTPOST_ASSERT_OK_AND_ASSIGN(std::string one, FreshPostgresDatabase("support"));
  OUTPOST_ASSERT_OK_AND_ASSIGN(std::string two, FreshPostgresDatabase("support"));
  EXPECT_NE(one, two);
  EXPECT_EQ(one.rfind(a->uri("support_"), 0), 0u) << one;
  // The database exists: creating it again fails.
  OUTPOST_EXPECT_CODE(a->CreateDatabase(one.substr(one.rfind('/') + 1)), Code::kUnavailable);
}

}  // namespace
}  // namespace outpost::testing
