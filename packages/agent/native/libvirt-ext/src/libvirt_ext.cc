// What @unraid/libvirt lacks: the library and hypervisor versions and the
// capabilities XML. Each call opens its own read-only connection on the libuv
// thread pool, so the event loop never waits on libvirtd.

#include <napi.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <string>

namespace {

enum class Query { LibVersion, HypervisorVersion, Capabilities };

// libvirt encodes versions as major * 1,000,000 + minor * 1,000 + release.
std::string FormatVersion(unsigned long version) {
  return std::to_string(version / 1000000) + "." + std::to_string((version / 1000) % 1000) + "." +
         std::to_string(version % 1000);
}

class QueryWorker : public Napi::AsyncWorker {
 public:
  QueryWorker(Napi::Env env, std::string uri, Query query)
      : Napi::AsyncWorker(env, "virtfleet:libvirt-ext"), deferred_(Napi::Promise::Deferred::New(env)),
        uri_(std::move(uri)), query_(query) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    virConnectPtr conn = virConnectOpenReadOnly(uri_.c_str());
    if (conn == nullptr) return Fail("virConnectOpenReadOnly");
    switch (query_) {
      case Query::LibVersion: {
        unsigned long version = 0;
        if (virConnectGetLibVersion(conn, &version) < 0) Fail("virConnectGetLibVersion");
        else result_ = FormatVersion(version);
        break;
      }
      case Query::HypervisorVersion: {
        unsigned long version = 0;
        // 0 means the driver does not know; report it as an empty string.
        if (virConnectGetVersion(conn, &version) < 0) Fail("virConnectGetVersion");
        else if (version != 0) result_ = FormatVersion(version);
        break;
      }
      case Query::Capabilities: {
        char* xml = virConnectGetCapabilities(conn);
        if (xml == nullptr) Fail("virConnectGetCapabilities");
        else {
          result_ = xml;
          free(xml);
        }
        break;
      }
    }
    virConnectClose(conn);
  }

  void OnOK() override { deferred_.Resolve(Napi::String::New(Env(), result_)); }

  void OnError(const Napi::Error& error) override {
    Napi::Error err = Napi::Error::New(Env(), error.Message());
    err.Set("code", Napi::Number::New(Env(), code_));
    err.Set("libvirtDomain", Napi::Number::New(Env(), domain_));
    deferred_.Reject(err.Value());
  }

 private:
  // libvirt keeps the last error per thread, so it must be read here, on the worker thread.
  void Fail(const char* call) {
    virErrorPtr err = virGetLastError();
    if (err != nullptr) {
      code_ = err->code;
      domain_ = err->domain;
      SetError(err->message != nullptr ? err->message : call);
    } else {
      SetError(std::string(call) + " failed");
    }
  }

  Napi::Promise::Deferred deferred_;
  std::string uri_;
  Query query_;
  std::string result_;
  int code_ = -1;
  int domain_ = -1;
};

template <Query query>
Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "uri must be a string");
  auto* worker = new QueryWorker(env, info[0].As<Napi::String>().Utf8Value(), query);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

void Silent(void*, virErrorPtr) {}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (virInitialize() < 0) throw Napi::Error::New(env, "virInitialize failed");
  // Errors reach JavaScript as rejections; without this libvirt also prints them on stderr.
  // The handler is process-wide, and @unraid/libvirt installs the same one on connect.
  virSetErrorFunc(nullptr, Silent);
  exports.Set("getLibVersion", Napi::Function::New(env, Run<Query::LibVersion>, "getLibVersion"));
  exports.Set("getHypervisorVersion", Napi::Function::New(env, Run<Query::HypervisorVersion>, "getHypervisorVersion"));
  exports.Set("getCapabilities", Napi::Function::New(env, Run<Query::Capabilities>, "getCapabilities"));
  return exports;
}

}  // namespace

NODE_API_MODULE(virtfleet_libvirt_ext, Init)
