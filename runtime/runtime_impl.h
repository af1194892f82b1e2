// Private state of Connection and ModelInstance (the public header only declares their Impls).
#pragma once

#include <condition_variable>
#include <shared_mutex>

#include "axstream/runtime/model_package.h"
#include "fd_mapping_cache.h"

namespace axstream::runtime {

struct Connection::Impl {
  std::shared_ptr<hal::Device> device;
  std::string device_name;
  int num_cores = 0;
  // Reset on release: the cores go back to other connections and processes.
  std::unique_ptr<hal::Reservation> reservation;
  std::mutex mutex;
  // Instances on one connection start on different cores (round robin), so several
  // single-core instances of one connection run in parallel.
  size_t next_core = 0;
};

struct ModelInstance::Impl {
  std::shared_ptr<Connection> connection;
  std::shared_ptr<Model> model;
  std::shared_ptr<const ModelPackage> package;
  std::shared_ptr<const engine::Program> program;
  hal::Reservation *reservation = nullptr;  // owned by the connection, outlives this instance
  InstanceOptions options;
  std::vector<size_t> cores;  // indices into reservation->cores(), one per executor
  // executors[k] runs only in jobs queued on cores[k], whose worker runs them one at a time.
  std::vector<std::unique_ptr<engine::Executor>> executors;
  // What runs synchronise on. A child forked while a run was in flight gets a fresh one
  // (model_instance.cc's fork handler): the threads that would unlock the parent's or give back
  // its slots are not in the child, so its first run() or release() would wait forever.
  struct RunGate {
    // Runs hold it shared; release takes it exclusively, so it waits for runs in flight.
    std::shared_mutex release_mutex;
    // Runs in flight: at most 1, or 2 with double_buffer.
    std::mutex flight_mutex;
    std::condition_variable flight_changed;
    int in_flight = 0;
  };
  RunGate gate;
  mutable std::mutex profile_mutex;
  RunProfile profile;
  FdMappingCache fd_mappings;  // fd arguments' mappings, kept across runs
};

}  // namespace axstream::runtime
