# The user's ONE-LINER DIAGNOSTIC CHECKLIST (502 runbook, /work/shared/seed/502-runbook.md), as given:
# the host-CPU reference for fleet's script.
echo "=== BACKEND STATUS ===" && \
ps aux | grep "python main.py" | grep -v grep && echo "✅ Running" || echo "❌ NOT running" && \
echo -e "\n=== PORT LISTENING ===" && \
sudo netstat -tlnp | grep 8000 && echo "✅ Listening on 8000" || echo "❌ NOT listening on 8000" && \
echo -e "\n=== LOCAL CONNECTIVITY ===" && \
curl -s -o /dev/null -w "%{http_code}" http://localhost:8000/health && echo " ✅ Backend responds" || echo " ❌ No response" && \
echo -e "\n=== NGINX ===" && \
sudo nginx -t 2>&1 | grep "ok"
