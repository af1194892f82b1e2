#include "axstream/hal/fork_reset.h"
#include "axstream/runtime/runtime.h"

namespace axstream::runtime {

// mutex_ is taken by every call (ensure_alive): a child forked while another thread was in one
// gets it new.
Object::Object(std::shared_ptr<Context> owner) : owner_(std::move(owner)) {
  hal::ForkRenewedMutexes::add(&mutex_);
}

Object::~Object() { hal::ForkRenewedMutexes::remove(&mutex_); }

std::shared_ptr<Context> Object::context() const {
  if (owner_) return owner_;
  // Only the Context itself has no owner.
  return std::static_pointer_cast<Context>(std::const_pointer_cast<Object>(shared_from_this()));
}

bool Object::released() const {
  std::lock_guard lock(mutex_);
  return released_;
}

void Object::ensure_alive() const {
  if (released()) throw InvalidArgument(describe() + " was released");
}

void Object::adopt(const std::shared_ptr<Object> &child) {
  std::lock_guard lock(mutex_);
  if (released_) throw InvalidArgument(describe() + " was released");
  // Drop children that are gone so long-lived parents do not grow without bound.
  std::erase_if(children_, [](const std::weak_ptr<Object> &weak) { return weak.expired(); });
  children_.push_back(child);
}

void Object::release() {
  std::vector<std::shared_ptr<Object>> children;
  {
    std::lock_guard lock(mutex_);
    if (released_) return;
    released_ = true;
    for (auto &weak : children_)
      if (auto child = weak.lock()) children.push_back(std::move(child));
    children_.clear();
  }
  // Newest first, so an instance goes before the model and connection it was made from.
  for (auto it = children.rbegin(); it != children.rend(); ++it) (*it)->release();
  on_release();
}

}  // namespace axstream::runtime
