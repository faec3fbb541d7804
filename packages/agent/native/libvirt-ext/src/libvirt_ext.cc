// What @unraid/libvirt lacks: the library and hypervisor versions, the
// capabilities XML, virtual networks, a domain's interface addresses, and live
// migration with its job statistics and abort. Each call opens its own
// connection (read-only unless it changes something) on the libuv thread pool,
// so the event loop never waits on libvirtd.

#include <napi.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace {

enum class Query { LibVersion, HypervisorVersion, Capabilities, EnsureNetwork, DomainAddresses, MigrateDomain, DomainJobStats, CompletedJobStats, AbortDomainJob, BackupBegin };

// migrateDomain's options, read and checked on the main thread.
struct MigrateOptions {
  unsigned int flags = 0;
  std::optional<std::string> migrateUri, disksUri, destXml, persistXml, destName;
  std::vector<std::string> migrateDisks;
  std::optional<unsigned long long> bandwidthMiBs, maxDowntimeMs;
};

const char* JobTypeName(int type) {
  switch (type) {
    case VIR_DOMAIN_JOB_BOUNDED: return "bounded";
    case VIR_DOMAIN_JOB_UNBOUNDED: return "unbounded";
    case VIR_DOMAIN_JOB_COMPLETED: return "completed";
    case VIR_DOMAIN_JOB_FAILED: return "failed";
    case VIR_DOMAIN_JOB_CANCELLED: return "cancelled";
    default: return "none";
  }
}

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
  QueryWorker(Napi::Env env, std::string uri, Query query, std::vector<std::string> args, MigrateOptions migrate = {})
      : Napi::AsyncWorker(env, "virtfleet:libvirt-ext"), deferred_(Napi::Promise::Deferred::New(env)),
        uri_(std::move(uri)), query_(query), args_(std::move(args)), migrate_(std::move(migrate)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    const bool writes = query_ == Query::EnsureNetwork || query_ == Query::MigrateDomain || query_ == Query::AbortDomainJob || query_ == Query::BackupBegin;
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
      case Query::MigrateDomain:
      case Query::DomainJobStats:
      case Query::CompletedJobStats:
      case Query::AbortDomainJob:
      case Query::BackupBegin: {
        virDomainPtr dom = virDomainLookupByName(conn, args_[0].c_str());
        if (dom == nullptr) {
          Fail("virDomainLookupByName");
          break;
        }
        if (query_ == Query::MigrateDomain) MigrateDomain(dom, args_[1]);
        else if (query_ == Query::DomainJobStats) DomainJobStats(dom, 0);
        else if (query_ == Query::CompletedJobStats) DomainJobStats(dom, VIR_DOMAIN_JOB_STATS_COMPLETED);
        // Push mode: libvirt writes each disk's content as of now to the files the XML names.
        else if (query_ == Query::BackupBegin) {
          if (virDomainBackupBegin(dom, args_[1].c_str(), nullptr, 0) < 0) Fail("virDomainBackupBegin");
        } else if (virDomainAbortJob(dom) < 0) Fail("virDomainAbortJob");
        virDomainFree(dom);
        break;
      }
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

  // Sets the maximum downtime if asked, then migrates with typed parameters
  // (virDomainMigrateToURI3); blocks until libvirt reports the end of the job.
  void MigrateDomain(virDomainPtr dom, const std::string& destUri) {
    const MigrateOptions& o = migrate_;
    if (o.maxDowntimeMs && virDomainMigrateSetMaxDowntime(dom, *o.maxDowntimeMs, 0) < 0) return Fail("virDomainMigrateSetMaxDowntime");
    virTypedParameterPtr params = nullptr;
    int n = 0;
    int max = 0;
    bool ok = true;
    const auto addString = [&](const char* name, const std::optional<std::string>& value) {
      if (ok && value && virTypedParamsAddString(&params, &n, &max, name, value->c_str()) < 0) ok = false;
    };
    addString(VIR_MIGRATE_PARAM_URI, o.migrateUri);
    addString(VIR_MIGRATE_PARAM_DISKS_URI, o.disksUri);
    addString(VIR_MIGRATE_PARAM_DEST_XML, o.destXml);
    addString(VIR_MIGRATE_PARAM_PERSIST_XML, o.persistXml);
    addString(VIR_MIGRATE_PARAM_DEST_NAME, o.destName);
    if (ok && !o.migrateDisks.empty()) {
      std::vector<const char*> disks;
      for (const std::string& disk : o.migrateDisks) disks.push_back(disk.c_str());
      disks.push_back(nullptr);
      ok = virTypedParamsAddStringList(&params, &n, &max, VIR_MIGRATE_PARAM_MIGRATE_DISKS, disks.data()) >= 0;
    }
    if (ok && o.bandwidthMiBs) ok = virTypedParamsAddULLong(&params, &n, &max, VIR_MIGRATE_PARAM_BANDWIDTH, *o.bandwidthMiBs) >= 0;
    if (!ok) Fail("virTypedParamsAdd");
    else if (virDomainMigrateToURI3(dom, destUri.c_str(), params, n, o.flags) < 0) Fail("virDomainMigrateToURI3");
    virTypedParamsFree(params, n);
  }

  // The current job (or with VIR_DOMAIN_JOB_STATS_COMPLETED the last finished one) as JSON:
  // {"type": "none" | "bounded" | ..., and every typed parameter by its name}.
  void DomainJobStats(virDomainPtr dom, unsigned int flags) {
    int type = VIR_DOMAIN_JOB_NONE;
    virTypedParameterPtr params = nullptr;
    int n = 0;
    if (virDomainGetJobStats(dom, &type, &params, &n, flags) < 0) return Fail("virDomainGetJobStats");
    std::string json = std::string("{\"type\":\"") + JobTypeName(type) + "\"";
    for (int i = 0; i < n; i++) {
      const virTypedParameter& p = params[i];
      if (std::string(p.field) == "type") continue;  // the job type above is the one callers read
      json += "," + JsonString(p.field) + ":";
      switch (p.type) {
        case VIR_TYPED_PARAM_INT: json += std::to_string(p.value.i); break;
        case VIR_TYPED_PARAM_UINT: json += std::to_string(p.value.ui); break;
        case VIR_TYPED_PARAM_LLONG: json += std::to_string(p.value.l); break;
        case VIR_TYPED_PARAM_ULLONG: json += std::to_string(p.value.ul); break;
        case VIR_TYPED_PARAM_DOUBLE: {
          char buffer[32];
          snprintf(buffer, sizeof buffer, "%.17g", p.value.d);
          json += std::isfinite(p.value.d) ? buffer : "null";
          break;
        }
        case VIR_TYPED_PARAM_BOOLEAN: json += p.value.b ? "true" : "false"; break;
        case VIR_TYPED_PARAM_STRING: json += JsonString(p.value.s != nullptr ? p.value.s : ""); break;
        default: json += "null";
      }
    }
    virTypedParamsFree(params, n);
    result_ = json + "}";
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
  MigrateOptions migrate_;
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

// The largest integer a JavaScript number holds exactly.
constexpr double kMaxSafeInteger = 9007199254740991.0;

// Reads migrateDomain's options object; a wrong type is a TypeError naming the option.
MigrateOptions ReadMigrateOptions(Napi::Env env, const Napi::Value& value) {
  if (!value.IsObject() || value.IsArray() || value.IsFunction()) throw Napi::TypeError::New(env, "options must be an object");
  Napi::Object options = value.As<Napi::Object>();
  static const char* const known[] = {"flags", "migrateUri", "disksUri", "destXml", "persistXml", "destName", "migrateDisks", "bandwidthMiBs", "maxDowntimeMs"};
  Napi::Array names = options.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); i++) {
    std::string name = names.Get(i).ToString().Utf8Value();
    bool isKnown = false;
    for (const char* k : known) isKnown = isKnown || name == k;
    if (!isKnown) throw Napi::TypeError::New(env, "options." + name + " is not a migrateDomain option");
  }
  const auto integer = [&](const char* name, double max) -> std::optional<double> {
    Napi::Value v = options.Get(name);
    if (v.IsUndefined()) return std::nullopt;
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= max && std::floor(d) == d))
      throw Napi::TypeError::New(env, std::string("options.") + name + " must be an integer from 0 to " + std::to_string(static_cast<unsigned long long>(max)));
    return d;
  };
  const auto string = [&](const char* name) -> std::optional<std::string> {
    Napi::Value v = options.Get(name);
    if (v.IsUndefined()) return std::nullopt;
    if (!v.IsString()) throw Napi::TypeError::New(env, std::string("options.") + name + " must be a string");
    return v.As<Napi::String>().Utf8Value();
  };
  MigrateOptions o;
  std::optional<double> flags = integer("flags", 4294967295.0);
  if (!flags) throw Napi::TypeError::New(env, "options.flags must be an integer from 0 to 4294967295");
  o.flags = static_cast<unsigned int>(*flags);
  o.migrateUri = string("migrateUri");
  o.disksUri = string("disksUri");
  o.destXml = string("destXml");
  o.persistXml = string("persistXml");
  o.destName = string("destName");
  Napi::Value disks = options.Get("migrateDisks");
  if (!disks.IsUndefined()) {
    if (!disks.IsArray()) throw Napi::TypeError::New(env, "options.migrateDisks must be an array of strings");
    Napi::Array list = disks.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Value disk = list.Get(i);
      if (!disk.IsString()) throw Napi::TypeError::New(env, "options.migrateDisks must be an array of strings");
      o.migrateDisks.push_back(disk.As<Napi::String>().Utf8Value());
    }
  }
  if (std::optional<double> b = integer("bandwidthMiBs", kMaxSafeInteger)) o.bandwidthMiBs = static_cast<unsigned long long>(*b);
  if (std::optional<double> d = integer("maxDowntimeMs", kMaxSafeInteger)) o.maxDowntimeMs = static_cast<unsigned long long>(*d);
  return o;
}

// migrateDomain(uri, domainName, destUri, options).
Napi::Value RunMigrate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4) throw Napi::TypeError::New(env, "too few arguments");
  for (size_t i = 0; i < 3; i++)
    if (!info[i].IsString()) throw Napi::TypeError::New(env, "uri, domainName and destUri must be strings");
  MigrateOptions options = ReadMigrateOptions(env, info[3]);
  std::vector<std::string> args = {info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::String>().Utf8Value()};
  auto* worker = new QueryWorker(env, info[0].As<Napi::String>().Utf8Value(), Query::MigrateDomain, std::move(args), std::move(options));
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
  exports.Set("migrateDomain", Napi::Function::New(env, RunMigrate, "migrateDomain"));
  exports.Set("domainJobStats", Napi::Function::New(env, Run<Query::DomainJobStats, 1>, "domainJobStats"));
  exports.Set("abortDomainJob", Napi::Function::New(env, Run<Query::AbortDomainJob, 1>, "abortDomainJob"));
  exports.Set("completedJobStats", Napi::Function::New(env, Run<Query::CompletedJobStats, 1>, "completedJobStats"));
  exports.Set("backupBegin", Napi::Function::New(env, Run<Query::BackupBegin, 2>, "backupBegin"));
  return exports;
}

}  // namespace

NODE_API_MODULE(virtfleet_libvirt_ext, Init)
