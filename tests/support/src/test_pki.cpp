#include "outpost/testing/test_pki.h"

#include <chrono>
#include <fstream>
#include <memory>

#include "outpost/testing/child_process.h"

namespace outpost::testing {
namespace {

Status RunOpenssl(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin(), "openssl");
  ChildProcessOptions o;
  o.argv = args;
  o.log_path = dir + "/openssl.log";
  o.working_dir = dir;
  Result<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(std::move(o));
  if (!child.ok()) return child.status();
  Result<int> rc = (*child)->Wait(std::chrono::seconds(30));
  if (!rc.ok()) return rc.status();
  if (*rc != 0) {
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    return Unavailable("openssl failed (" + std::to_string(*rc) + "): " + cmd + "\n" +
                       (*child)->log());
  }
  return Status::Ok();
}

Status SelfSignedCa(const std::string& dir, const std::string& name, const std::string& cn) {
  return RunOpenssl(
      dir, {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + cn});
}

Status SignedLeaf(const std::string& dir, const std::string& name, const std::string& cn,
                  const std::string& extensions) {
  {
    std::ofstream ext(dir + "/" + name + ".ext");
    ext << extensions << "basicConstraints=CA:FALSE\n";
  }
  OUTPOST_RETURN_IF_ERROR(
      RunOpenssl(dir, {"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                       "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn}));
  return RunOpenssl(
      dir, {"x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext"});
}

}  // namespace

Result<TestPki> GenerateTestPki(const std::string& dir) {
  OUTPOST_RETURN_IF_ERROR(SelfSignedCa(dir, "ca", "Outpost Test CA"));
  OUTPOST_RETURN_IF_ERROR(SelfSignedCa(dir, "other-ca", "Unrelated Test CA"));
  OUTPOST_RETURN_IF_ERROR(SignedLeaf(dir, "server", "localhost",
                                     "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                     "extendedKeyUsage=serverAuth\n"));
  OUTPOST_RETURN_IF_ERROR(
      SignedLeaf(dir, "client", "outpost-test-client", "extendedKeyUsage=clientAuth\n"));
  TestPki pki;
  pki.ca_cert = dir + "/ca.crt";
  pki.ca_key = dir + "/ca.key";
  pki.server_cert = dir + "/server.crt";
  pki.server_key = dir + "/server.key";
  pki.client_cert = dir + "/client.crt";
  pki.client_key = dir + "/client.key";
  pki.other_ca_cert = dir + "/other-ca.crt";
  return pki;
}

}  // namespace outpost::testing
