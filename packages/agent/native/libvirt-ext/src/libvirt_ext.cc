// What @unraid/libvirt lacks: the library and hypervisor versions, the
// capabilities XML, virtual networks and a domain's interface addresses. Each
// call opens its own connection (read-only unless it changes something) on
// the libuv thread pool, so the event loop never waits on libvirtd.

#include <napi.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <string>
#include <vector>

namespace {

enum class Query { LibVersion, HypervisorVersion, Capabilities, EnsureNetwork, DomainAddresses };

// A JSON string literal of `text`, for the small documents the calls answer with.
std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buffer[8];
      snprintf(buffer, sizeof buffer, "\\u%04x", c);
      out += buffer;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// libvirt encodes versions as major * 1,000,000 + minor * 1,000 + release.
std::string FormatVersion(unsigned long version) {
  return std::to_string(version / 1000000) + "." + std::to_string((version / 1000) % 1000) + "." +
         std::to_string(version % 1000);
}

class QueryWorker : public Napi::AsyncWorker {
 public:
  QueryWorker(Napi::Env env, std::string uri, Query query, std::vector<std::string> args)
      : Napi::AsyncWorker(env, "virtfleet:libvirt-ext"), deferred_(Napi::Promise::Deferred::New(env)),
        uri_(std::move(uri)), query_(query), args_(std::move(args)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    const bool writes = query_ == Query::EnsureNetwork;
    virConnectPtr conn = writes ? virConnectOpen(uri_.c_str()) : virConnectOpenReadOnly(uri_.c_str());
    if (conn == nullptr) return Fail(writes ? "virConnectOpen" : "virConnectOpenReadOnly");
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
      case Query::EnsureNetwork:
        EnsureNetwork(conn, args_[0], args_[1]);
        break;
      case Query::DomainAddresses:
        DomainAddresses(conn, args_[0]);
        break;
    }
    virConnectClose(conn);
  }

  // Defines the network from `xml` unless one named `name` exists, starts it
  // if inactive and marks it autostart. Answers "defined" or "existing".
  void EnsureNetwork(virConnectPtr conn, const std::string& name, const std::string& xml) {
    virNetworkPtr net = virNetworkLookupByName(conn, name.c_str());
    result_ = "existing";
    if (net == nullptr) {
      net = virNetworkDefineXML(conn, xml.c_str());
      if (net == nullptr) return Fail("virNetworkDefineXML");
      result_ = "defined";
    }
    int active = virNetworkIsActive(net);
    if (active < 0) Fail("virNetworkIsActive");
    else if (active == 0 && virNetworkCreate(net) < 0) Fail("virNetworkCreate");
    else if (virNetworkSetAutostart(net, 1) < 0) Fail("virNetworkSetAutostart");
    virNetworkFree(net);
  }

  // The addresses of a domain's interfaces, from its networks' DHCP leases, as
  // JSON: [{"name","hwaddr","addrs":[{"type":"ipv4"|"ipv6","addr","prefix"}]}].
  void DomainAddresses(virConnectPtr conn, const std::string& name) {
    virDomainPtr dom = virDomainLookupByName(conn, name.c_str());
    if (dom == nullptr) return Fail("virDomainLookupByName");
    virDomainInterfacePtr* ifaces = nullptr;
    int count = virDomainInterfaceAddresses(dom, &ifaces, VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0);
    if (count < 0) {
      Fail("virDomainInterfaceAddresses");
    } else {
      std::string json = "[";
      for (int i = 0; i < count; i++) {
        virDomainInterfacePtr iface = ifaces[i];
        if (i > 0) json += ",";
        json += "{\"name\":" + JsonString(iface->name ? iface->name : "") + ",\"hwaddr\":" + JsonString(iface->hwaddr ? iface->hwaddr : "") + ",\"addrs\":[";
        for (unsigned int j = 0; j < iface->naddrs; j++) {
          const virDomainIPAddress& a = iface->addrs[j];
          if (j > 0) json += ",";
          json += std::string("{\"type\":\"") + (a.type == VIR_IP_ADDR_TYPE_IPV6 ? "ipv6" : "ipv4") + "\",\"addr\":" + JsonString(a.addr ? a.addr : "") +
                  ",\"prefix\":" + std::to_string(a.prefix) + "}";
        }
        json += "]}";
        virDomainInterfaceFree(iface);
      }
      free(ifaces);
      result_ = json + "]";
    }
    virDomainFree(dom);
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
  std::vector<std::string> args_;
  std::string result_;
  int code_ = -1;
  int domain_ = -1;
};

// Every argument is a string: the URI first, then `arity` more.
template <Query query, size_t arity = 0>
Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 + arity) throw Napi::TypeError::New(env, "too few arguments");
  for (size_t i = 0; i <= arity; i++)
    if (!info[i].IsString()) throw Napi::TypeError::New(env, "arguments must be strings");
  std::vector<std::string> args;
  for (size_t i = 1; i <= arity; i++) args.push_back(info[i].As<Napi::String>().Utf8Value());
  auto* worker = new QueryWorker(env, info[0].As<Napi::String>().Utf8Value(), query, std::move(args));
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
  exports.Set("ensureNetwork", Napi::Function::New(env, Run<Query::EnsureNetwork, 2>, "ensureNetwork"));
  exports.Set("domainAddresses", Napi::Function::New(env, Run<Query::DomainAddresses, 1>, "domainAddresses"));
  return exports;
}

}  // namespace

NODE_API_MODULE(virtfleet_libvirt_ext, Init)
