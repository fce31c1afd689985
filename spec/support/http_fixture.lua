-- Starts spec/support/http_server.py (or another server script taking a port-file argument)
-- on a free loopback port and stops it by PID.
local F = {}

function F.start(script)
    local dir = os.tmpname()
    os.remove(dir)
    local portfile = dir .. ".port"
    local pidfile = dir .. ".pid"
    local ok = os.execute(("python3 %s %s >/dev/null 2>&1 & echo $! > %s")
        :format(script or "spec/support/http_server.py", portfile, pidfile))
    if ok ~= 0 and ok ~= true then
        return nil, "cannot start python3"
    end
    local port
    for _ = 1, 100 do
        local f = io.open(portfile)
        if f then
            port = tonumber(f:read("*a"))
            f:close()
            if port then
                break
            end
        end
        os.execute("sleep 0.05")
    end
    local pf = io.open(pidfile)
    local pid = pf and tonumber(pf:read("*a"))
    if pf then
        pf:close()
    end
    os.remove(pidfile)
    os.remove(portfile)
    if not port then
        if pid then
            os.execute("kill " .. pid .. " 2>/dev/null")
        end
        return nil, "the test HTTP server did not start"
    end
    return { port = port, pid = pid, base = "http://127.0.0.1:" .. port }
end

function F.stop(s)
    if s and s.pid then
        os.execute("kill " .. s.pid .. " 2>/dev/null")
    end
end

return F
