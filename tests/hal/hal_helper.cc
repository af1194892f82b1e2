// A second process for the hal tests, acting on the simulated devices with its own file
// descriptors (environment inherited from the test). One command per run:
//   hold DEVICE COUNT        reserve COUNT cores, print "held <pid> <cores...>", keep them until
//                            stdin closes (or the process is killed)
//   reserve DEVICE COUNT     try to reserve; print "ok" or "DeviceInUse: <message>"
//   configure DEVICE K=V...  print "applied" or "pending"
//   read DEVICE              print the configuration as key=value lines, then "ready=0|1"
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include "axstream/error.h"
#include "axstream/hal/device.h"

using namespace axstream;

int main(int argc, char **argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " hold|reserve|configure|read DEVICE [ARGS...]\n";
    return 2;
  }
  std::string command = argv[1];
  try {
    auto device = hal::find_device(argv[2]);
    if (!device) {
      std::cout << "no device " << argv[2] << std::endl;
      return 3;
    }
    if (command == "hold" && argc == 4) {
      auto reservation = device->reserve(std::stoi(argv[3]));
      std::cout << "held " << ::getpid();
      for (int core : reservation->cores()) std::cout << ' ' << core;
      std::cout << std::endl;
      char ignored;
      while (::read(0, &ignored, 1) > 0) {
      }
      return 0;
    }
    if (command == "reserve" && argc == 4) {
      auto reservation = device->reserve(std::stoi(argv[3]));
      std::cout << "ok" << std::endl;
      return 0;
    }
    if (command == "configure") {
      std::map<std::string, std::string> settings;
      for (int i = 3; i < argc; ++i) {
        std::string setting = argv[i];
        size_t equals = setting.find('=');
        settings[setting.substr(0, equals)] =
            equals == std::string::npos ? "" : setting.substr(equals + 1);
      }
      std::cout << (device->configure(settings) ? "applied" : "pending") << std::endl;
      return 0;
    }
    if (command == "read" && argc == 3) {
      for (const auto &[key, value] : device->read_configuration())
        std::cout << key << '=' << value << '\n';
      std::cout << "ready=" << (device->ready() ? 1 : 0) << std::endl;
      return 0;
    }
    std::cerr << "bad command line\n";
    return 2;
  } catch (const Error &error) {
    std::cout << error_kind_name(error.kind()) << ": " << error.what() << std::endl;
    return 1;
  }
}
